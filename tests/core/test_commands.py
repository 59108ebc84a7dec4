"""Agent commands by email: parsing, relayed text, errors, authorization by role and level."""

from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.core.commands import (
    COMMAND_ROLES,
    USAGE,
    AssignCommand,
    CancelConfirmCommand,
    CancelDenyCommand,
    CancellationRequest,
    Command,
    CommandName,
    EscalateCommand,
    NoteCommand,
    PriorityCommand,
    RefundApproveCommand,
    RefundDenyCommand,
    StatusCommand,
    authorize,
    check_commands,
    command_name,
    parse_commands,
)
from mailproc.core.identity import Agent, AgentRole
from mailproc.core.model import Plan, Priority, TicketStatus
from mailproc.core.quotes import split_reply
from mailproc.core.refunds import RefundCase, RefundKind

R = AgentRole
D = Decimal

# (what, agent's new text, expected commands, expected relayed text)
PARSES: list[tuple[str, str, list[Command], str]] = [
    (
        "status then the answer",
        "#status resolved\n\nHi Laura, it works again.",
        [StatusCommand("#status resolved", TicketStatus.RESOLVED)],
        "Hi Laura, it works again.",
    ),
    (
        "case-insensitive, colon allowed, leading blank lines",
        "\n\n  #Status: Waiting\nCould you send a screenshot?",
        [StatusCommand("#Status: Waiting", TicketStatus.WAITING)],
        "Could you send a screenshot?",
    ),
    (
        "every command, blank lines between",
        "#priority p1\n#escalate support-manager customer is angry\n\n#assign María López\n"
        "#refund approve 149.00\n#status closed",
        [
            PriorityCommand("#priority p1", Priority.P1),
            EscalateCommand(
                "#escalate support-manager customer is angry",
                R.SUPPORT_MANAGER,
                "customer is angry",
            ),
            AssignCommand("#assign María López", "María López"),
            RefundApproveCommand("#refund approve 149.00", D("149.00"), None),
            StatusCommand("#status closed", TicketStatus.CLOSED),
        ],
        "",
    ),
    (
        "P0 by number, escalate without reason",
        "#priority 0\n#escalate devops",
        [
            PriorityCommand("#priority 0", Priority.P0),
            EscalateCommand("#escalate devops", R.DEVOPS, ""),
        ],
        "",
    ),
    (
        "a note runs to the blank line and is never relayed",
        "#note DB admin is on holiday;\nlogs look clean.\nDo not tell the customer.\n\n"
        "Hello, we are still looking into it.",
        [
            NoteCommand(
                "#note DB admin is on holiday;",
                "DB admin is on holiday;\nlogs look clean.\nDo not tell the customer.",
            )
        ],
        "Hello, we are still looking into it.",
    ),
    (
        "a note stops at the next command",
        "#note\nchecked the logs\n#status waiting\n\nAny news on your side?",
        [
            NoteCommand("#note", "checked the logs"),
            StatusCommand("#status waiting", TicketStatus.WAITING),
        ],
        "Any news on your side?",
    ),
    (
        "refund amounts with a currency; deny with a reason",
        "#refund approve 149,00 €",
        [RefundApproveCommand("#refund approve 149,00 €", D(149), "EUR")],
        "",
    ),
    (
        "deny",
        "#REFUND DENY outside the 30-day guarantee\nSorry, we cannot refund this.",
        [
            RefundDenyCommand(
                "#REFUND DENY outside the 30-day guarantee", "outside the 30-day guarantee"
            )
        ],
        "Sorry, we cannot refund this.",
    ),
    (
        "two escalations and two notes are fine",
        "#escalate engineering\n#escalate product\n#note a\n#note b",
        [
            EscalateCommand("#escalate engineering", R.ENGINEERING, ""),
            EscalateCommand("#escalate product", R.PRODUCT, ""),
            NoteCommand("#note a", "a"),
            NoteCommand("#note b", "b"),
        ],
        "",
    ),
    ("no commands", "Hi,\n\n#1 fix: restart the sync.", [], "Hi,\n\n#1 fix: restart the sync."),
    (
        "commands after text are not commands; a hashtag is text",
        "Thanks for the details.\n#hashtag #status",
        [],
        "Thanks for the details.\n#hashtag #status",
    ),
    (
        "CRLF line ends",
        "#status resolved\r\n\r\nDone.\r\n",
        [StatusCommand("#status resolved", TicketStatus.RESOLVED)],
        "Done.",
    ),
    ("empty mail", "", [], ""),
]


@pytest.mark.parametrize(
    ("text", "commands", "remaining"), [p[1:] for p in PARSES], ids=[p[0] for p in PARSES]
)
def test_parse_commands(text: str, commands: list[Command], remaining: str) -> None:
    parsed = parse_commands(text)
    assert parsed.errors == ()
    assert list(parsed.commands) == commands
    assert parsed.remaining_text == remaining


# (what, agent's new text, problem the single error names, usage shown)
ERRORS = [
    ("unknown command", "#close now", "unknown command #close", None),
    ("status without argument", "#status", "#status needs an argument", USAGE[CommandName.STATUS]),
    ("status new cannot be set", "#status new", "unknown status 'new'", USAGE[CommandName.STATUS]),
    (
        "status with trailing words",
        "#status resolved now",
        "unknown status",
        USAGE[CommandName.STATUS],
    ),
    ("priority out of range", "#priority P5", "unknown priority 'P5'", USAGE[CommandName.PRIORITY]),
    ("unknown team", "#escalate sales please", "unknown team 'sales'", USAGE[CommandName.ESCALATE]),
    ("empty note", "#note\n\nHello", "#note needs an argument", USAGE[CommandName.NOTE]),
    (
        "refund without action",
        "#refund 149",
        "approve or deny, not '149'",
        USAGE[CommandName.REFUND],
    ),
    (
        "approve without amount",
        "#refund approve",
        "nothing is not a positive amount",
        USAGE[CommandName.REFUND],
    ),
    (
        "approve a word",
        "#refund approve all",
        "all is not a positive amount",
        USAGE[CommandName.REFUND],
    ),
    ("approve zero", "#refund approve 0.00", "not a positive amount", USAGE[CommandName.REFUND]),
    ("deny without reason", "#refund deny", "needs a reason", USAGE[CommandName.REFUND]),
    ("assign nobody", "#assign   ", "#assign needs an argument", USAGE[CommandName.ASSIGN]),
    ("overlong name", "#assign " + "x" * 201, "longer than 200", USAGE[CommandName.ASSIGN]),
    ("status twice", "#status waiting\n#status resolved", "#status is given more than once", None),
    (
        "refund twice",
        "#refund approve 49\n#refund deny no",
        "#refund is given more than once",
        None,
    ),
    (
        "a note after the text would reach the customer",
        "Hi Laura, fixed.\n#note customer was rude",
        "commands must come before any other text",
        None,
    ),
]


@pytest.mark.parametrize(
    ("text", "problem", "usage"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_parse_errors(text: str, problem: str, usage: str | None) -> None:
    parsed = parse_commands(text)
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert problem in error.problem
    assert error.usage == usage
    assert error.source and error.source in text


def test_one_error_per_problem_and_good_commands_still_listed() -> None:
    parsed = parse_commands("#status maybe\n#priority P9\n#note fine\n\nHello\n#status resolved")
    assert [e.source for e in parsed.errors] == [
        "#status maybe",
        "#priority P9",
        "#status resolved",
    ]
    assert parsed.commands == (NoteCommand("#note fine", "fine"),)


def test_misplaced_note_stays_out_of_a_clean_parse() -> None:
    """A #note written after the text is an error, so the caller relays nothing."""
    parsed = parse_commands("Fixed.\n\n#NOTE: internal only")
    assert parsed.errors and parsed.commands == ()


def test_commands_read_from_split_reply_new_text() -> None:
    body = (
        "#status resolved\n#note restarted the worker\n\nIt works again.\n\n"
        "On Thu, 26 Nov 2026 at 14:12, Priya Raman <priya@harborline.example> wrote:\n"
        "> #status open\n> Error 503 everywhere"
    )
    parsed = parse_commands(split_reply(body).new_text)
    assert [command_name(c) for c in parsed.commands] == [CommandName.STATUS, CommandName.NOTE]
    assert parsed.remaining_text == "It works again."
    assert parsed.errors == ()


_BODY_LINE = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40
).filter(lambda line: line.strip() and not line.lstrip().startswith("#"))
_COMMAND_LINES = st.sampled_from(
    ["#status resolved", "#priority P2", "#escalate product", "#assign Ann", "#note x"]
)


@given(st.lists(_COMMAND_LINES, max_size=5, unique=True), st.lists(_BODY_LINE, max_size=5))
def test_body_after_commands_is_relayed_verbatim(commands: list[str], body: list[str]) -> None:
    text = "\n".join(body)
    parsed = parse_commands("\n".join([*commands, "", *body]))
    assert parsed.errors == ()
    assert [c.source for c in parsed.commands] == commands
    assert parsed.remaining_text == text.rstrip()


_ANY_LINE = st.one_of(
    _COMMAND_LINES,
    st.sampled_from(["", "  ", "#NOTE secret", "#foo", "#status", "text", "#Status: closed"]),
    st.text(max_size=30).map(lambda t: t.replace("\r", "")),
)
_KNOWN = re.compile(r"\s*#(?:status|priority|escalate|note|refund|assign)(?![\w-])", re.I)


@given(st.lists(_ANY_LINE, max_size=8))
def test_relayed_text_is_a_tail_free_of_commands(lines: list[str]) -> None:
    text = "\n".join(lines)
    parsed = parse_commands(text)
    all_lines = text.split("\n")
    tails = ["\n".join(all_lines[k:]).rstrip() for k in range(len(all_lines) + 1)]
    assert parsed.remaining_text in tails
    relayed = parsed.remaining_text.split("\n")
    assert not re.match(r"\s*#[A-Za-z]\w*(?![\w-])", relayed[0])  # the block took every command
    if not parsed.errors:
        assert not any(_KNOWN.match(line) for line in relayed)


# --- authorization ---------------------------------------------------------------------------


def agent(name: str, *roles: AgentRole) -> Agent:
    return Agent(name, frozenset(roles), (f"{name.lower()}@dataflow.com",))


ANN = agent("Ann", R.AGENT)
MIA = agent("Mia", R.SUPPORT_MANAGER)
FAY = agent("Fay", R.FINANCE_DIRECTOR)
DEV = agent("Dev", R.DEVOPS)
CTO = agent("Cto", R.CTO)
NOBODY = agent("Nobody")
STARTER_REFUND = RefundCase(D(49), "USD", Plan.STARTER, 16)  # 1002, §6.2 use case
LATE_REFUND = RefundCase(D(149), "USD", Plan.PROFESSIONAL, 45)


def one(text: str) -> Command:
    parsed = parse_commands(text)
    assert parsed.errors == ()
    (command,) = parsed.commands
    return command


# (what, command, agent, refund case, allowed, words in the reason)
AUTHORIZATIONS = [
    ("agent sets status", "#status resolved", ANN, None, True, "Ann may use #status"),
    ("agent declares an outage", "#priority P0", ANN, None, True, ""),
    ("agent escalates", "#escalate engineering", ANN, None, True, ""),
    ("engineer resolves by mail", "#status resolved", DEV, None, True, ""),
    ("CTO writes a note", "#note looking", CTO, None, True, ""),
    ("no role, no command", "#note hi", NOBODY, None, False, "Nobody (no role) may not use #note"),
    ("1002: agent approves a Starter refund", "#refund approve 49", ANN, STARTER_REFUND, True, ""),
    (
        "agent too low for a refund after 30 days",
        "#refund approve 149",
        ANN,
        LATE_REFUND,
        False,
        "Agent (level 1) is below the Support Manager (level 2) this needs: 45 days since purchase",
    ),
    ("manager approves it", "#refund approve 149", MIA, LATE_REFUND, True, "covers"),
    ("agent cannot deny it either", "#refund deny too late", ANN, LATE_REFUND, False, "45 days"),
    ("manager denies it", "#refund deny too late", MIA, LATE_REFUND, True, ""),
    (
        "the approved amount counts, not the asked one",
        "#refund approve 1200",
        MIA,
        STARTER_REFUND,
        False,
        "1200 USD is over the 1000 USD manager limit",
    ),
    ("finance director approves it", "#refund approve 1200", FAY, STARTER_REFUND, True, ""),
    (
        "a currency written in the command",
        "#refund approve 49 EUR",
        ANN,
        STARTER_REFUND,
        False,
        "EUR",
    ),
    (
        "CTO has no refund authority",
        "#refund approve 49",
        CTO,
        STARTER_REFUND,
        False,
        "may not use #refund",
    ),
    ("no open request", "#refund approve 49", MIA, None, False, "no open refund"),
]


@pytest.mark.parametrize(
    ("text", "who", "refund", "allowed", "words"),
    [a[1:] for a in AUTHORIZATIONS],
    ids=[a[0] for a in AUTHORIZATIONS],
)
def test_authorize(
    text: str, who: Agent, refund: RefundCase | None, allowed: bool, words: str
) -> None:
    decision = authorize(one(text), who, refund)
    assert decision.allowed is allowed
    assert words in decision.reason


def test_role_table_opens_everything_but_refunds_and_cancellations_to_every_role() -> None:
    money = (CommandName.REFUND, CommandName.CANCEL)
    for name, roles in COMMAND_ROLES.items():
        expected = {R.AGENT, R.SUPPORT_MANAGER, R.SUPPORT_DIRECTOR, R.FINANCE_DIRECTOR}
        assert roles == (expected if name in money else set(AgentRole))
    assert set(COMMAND_ROLES) == set(CommandName) == set(USAGE)


def test_check_commands_gives_one_error_per_problem() -> None:
    parsed = parse_commands("#status resolved\n#priority P7\n#refund approve 149\n\nDone.")
    errors = check_commands(parsed, ANN, LATE_REFUND)
    assert [e.source for e in errors] == ["#priority P7", "#refund approve 149"]
    assert "45 days since purchase" in errors[1].problem
    assert check_commands(parse_commands("#refund approve 149"), MIA, LATE_REFUND) == ()


def test_enterprise_cancellation_needs_a_manager() -> None:
    cancellation = RefundCase(D(0), "USD", Plan.ENTERPRISE, 700, RefundKind.CANCELLATION)
    assert not authorize(one("#refund deny contract runs to 2027"), ANN, cancellation).allowed
    assert authorize(one("#refund deny contract runs to 2027"), MIA, cancellation).allowed


@pytest.mark.parametrize(
    "line", ["#note" + " " * 20_000 + ":" + " " * 20_000, " " * 20_000 + "#x" + " " * 20_000]
)
def test_long_hostile_lines_are_read_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    parse_commands(f"{line}\n{line}\n\ntext\n{line}")
    assert time.perf_counter() - started < 0.5


# --- #cancel (issue 15 part 4) -------------------------------------------------------------------

CANCEL_USAGE = USAGE[CommandName.CANCEL]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#cancel confirm", CancelConfirmCommand("#cancel confirm", None)),
        (
            "#Cancel Confirm effective 2026-12-31",
            CancelConfirmCommand("#Cancel Confirm effective 2026-12-31", dt.date(2026, 12, 31)),
        ),
        ("#cancel deny", CancelDenyCommand("#cancel deny", "")),
        (
            "#Cancel DENY the customer withdrew it",
            CancelDenyCommand("#Cancel DENY the customer withdrew it", "the customer withdrew it"),
        ),
    ],
)
def test_parse_cancel(text: str, expected: Command) -> None:
    assert one(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("#cancel now", "#cancel takes confirm or deny, not 'now'"),
        ("#cancel confirm tomorrow", "expected effective YYYY-MM-DD, not 'tomorrow'"),
        ("#cancel confirm effective 31/12/2026", "'31/12/2026' is not a date (YYYY-MM-DD)"),
        ("#cancel confirm effective 2026-02-30", "'2026-02-30' is not a date (YYYY-MM-DD)"),
        ("#cancel confirm effective 20261231", "'20261231' is not a date (YYYY-MM-DD)"),
    ],
)
def test_cancel_errors_show_the_usage(text: str, problem: str) -> None:
    [error] = parse_commands(text).errors
    assert (error.problem, error.usage) == (problem, CANCEL_USAGE)


ASKED, TODAY = dt.date(2026, 11, 27), dt.date(2026, 11, 28)
STARTER_CANCEL = CancellationRequest(Plan.STARTER, "USD", ASKED, TODAY)
ENTERPRISE_CANCEL = CancellationRequest(Plan.ENTERPRISE, "USD", ASKED, TODAY)
LOCKED_CANCEL = CancellationRequest(Plan.PROFESSIONAL, "USD", ASKED, TODAY, price_lock=True)
CANCELS = [
    ("agent, 7 days' notice", "#cancel confirm", ANN, STARTER_CANCEL, True, ""),
    (
        "agent, short notice",
        "#cancel confirm effective 2026-11-30",
        ANN,
        STARTER_CANCEL,
        False,
        "3 days' notice, under the 7 days' notice",
    ),
    (
        "manager, short notice",
        "#cancel confirm effective 2026-11-30",
        MIA,
        STARTER_CANCEL,
        True,
        "",
    ),
    ("agent, Enterprise", "#cancel confirm", ANN, ENTERPRISE_CANCEL, False, "custom pricing"),
    ("manager, Enterprise", "#cancel confirm", MIA, ENTERPRISE_CANCEL, True, ""),
    ("manager, price lock", "#cancel confirm", MIA, LOCKED_CANCEL, False, "price-locked"),
    ("finance, price lock", "#cancel confirm", FAY, LOCKED_CANCEL, True, ""),
    (
        "in the past",
        "#cancel confirm effective 2026-11-27",
        FAY,
        STARTER_CANCEL,
        False,
        "the effective date 2026-11-27 is before today (2026-11-28)",
    ),
    ("no request", "#cancel confirm", MIA, None, False, "no open cancellation request"),
    ("no authority", "#cancel confirm", DEV, STARTER_CANCEL, False, "may not use #cancel"),
    ("agent denies, Starter", "#cancel deny sent by mistake", ANN, STARTER_CANCEL, True, ""),
    ("agent denies, Enterprise", "#cancel deny", ANN, ENTERPRISE_CANCEL, False, "custom pricing"),
    ("manager denies, Enterprise", "#cancel deny", MIA, ENTERPRISE_CANCEL, True, ""),
    ("manager denies, price lock", "#cancel deny", MIA, LOCKED_CANCEL, False, "price-locked"),
    ("deny, no request", "#cancel deny", MIA, None, False, "no open cancellation request"),
    ("deny, no authority", "#cancel deny", DEV, STARTER_CANCEL, False, "may not use #cancel"),
]


@pytest.mark.parametrize(
    ("text", "who", "asked", "allowed", "words"),
    [c[1:] for c in CANCELS],
    ids=[c[0] for c in CANCELS],
)
def test_authorize_cancel(
    text: str, who: Agent, asked: CancellationRequest | None, allowed: bool, words: str
) -> None:
    decision = authorize(one(text), who, cancellation=asked)
    assert decision.allowed is allowed
    assert words in decision.reason


def test_refund_commands_on_a_cancellation_point_to_cancel() -> None:
    decision = authorize(one("#refund deny no"), MIA, None, cancellation=STARTER_CANCEL)
    assert not decision.allowed
    assert decision.reason.endswith("confirm its cancellation with #cancel confirm")
