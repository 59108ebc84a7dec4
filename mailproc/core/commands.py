"""Agent commands by email: ``#status``, ``#priority``, … lines at the top of an agent's reply."""

# Syntax. After leading blank lines, every line that starts with ``#word`` is a command; blank
# lines between commands are allowed. The block ends at the first other non-blank line: from
# there on the text is relayed to the customer. ``#note`` takes the rest of its line and the
# lines below it up to the next blank line or command line, so an internal note is never
# relayed. A known command written below the relayed text is an error (it would otherwise
# reach the customer), not a command. Names and keywords are case-insensitive.
#
# Errors. Each syntax error or refused command yields one CommandError for the error mail.
# When there is any, the caller changes nothing and relays nothing: the agent corrects the
# mail and sends it again.
#
# Roles. Every staff role may use #status, #priority (P0 included: an outage must not wait
# for a manager), #note, #assign and #escalate. #refund approve or deny needs the level the
# refund case requires (refunds.required_level): whoever may grant a refund may refuse it.
# #cancel confirm needs the level of the cancellation (Enterprise, a price lock, a contract
# dispute or less than 7 days' notice: above an agent); #cancel deny (a request detected by
# mistake or withdrawn) the same level as a confirmation at the notice period.
# #kb draft and update: any staff role; #kb publish and reject: managers (core.kb).

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from mailproc.core.identity import Agent, AgentRole
from mailproc.core.kb import KB_USAGE, REVIEWER_ROLES, KbAction, KbCommand, parse_kb
from mailproc.core.model import Plan, Priority, TicketStatus
from mailproc.core.refunds import (
    DEFAULT_REFUND_POLICY,
    ROLE_LEVELS,
    Decision,
    RefundCase,
    RefundKind,
    RefundPolicy,
    can_approve,
    cancellation_effective,
    parse_amount,
    required_level,
)


class CommandName(StrEnum):
    """The commands an agent may write."""

    STATUS = "status"
    PRIORITY = "priority"
    ESCALATE = "escalate"
    NOTE = "note"
    REFUND = "refund"
    ASSIGN = "assign"
    KB = "kb"
    CANCEL = "cancel"


USAGE: Mapping[CommandName, str] = MappingProxyType(
    {
        CommandName.STATUS: "#status open|waiting|resolved|closed",
        CommandName.PRIORITY: "#priority P0|P1|P2|P3",
        CommandName.ESCALATE: "#escalate devops|engineering|product|support_manager [reason]",
        CommandName.NOTE: "#note TEXT (up to the next blank line)",
        CommandName.REFUND: "#refund approve AMOUNT | #refund deny REASON",
        CommandName.ASSIGN: "#assign NAME",
        CommandName.KB: KB_USAGE,
        CommandName.CANCEL: "#cancel confirm [effective YYYY-MM-DD] | #cancel deny [reason]",
    }
)
# Which roles may use each command; refunds are further limited by the case's level.
COMMAND_ROLES: Mapping[CommandName, frozenset[AgentRole]] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                CommandName.STATUS,
                CommandName.PRIORITY,
                CommandName.ESCALATE,
                CommandName.NOTE,
                CommandName.ASSIGN,
                CommandName.KB,
            ),
            frozenset(AgentRole),
        ),
        CommandName.REFUND: frozenset(ROLE_LEVELS),
        CommandName.CANCEL: frozenset(ROLE_LEVELS),
    }
)
ESCALATION_TEAMS = (
    AgentRole.DEVOPS,
    AgentRole.ENGINEERING,
    AgentRole.PRODUCT,
    AgentRole.SUPPORT_MANAGER,
)
_SETTABLE_STATUSES = tuple(status for status in TicketStatus if status is not TicketStatus.NEW)
_ONCE = frozenset(
    {
        CommandName.STATUS,
        CommandName.PRIORITY,
        CommandName.REFUND,
        CommandName.ASSIGN,
        CommandName.KB,
        CommandName.CANCEL,
    }
)
_COMMAND = re.compile(r"\s*#([A-Za-z]\w*)(?![\w-])\s*:?(.*)")
_KNOWN = re.compile(rf"\s*#(?:{'|'.join(CommandName)})(?![\w-])", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PRIORITY = re.compile(r"p?([0-3])", re.IGNORECASE)
MAX_ARGUMENT_CHARS = 200  # a name or a reason; notes may be longer


@dataclass(frozen=True, slots=True)
class StatusCommand:
    """Set the ticket's status."""

    source: str
    status: TicketStatus


@dataclass(frozen=True, slots=True)
class PriorityCommand:
    """Set the ticket's priority (the SLA and the escalation timers follow)."""

    source: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class EscalateCommand:
    """Escalate the ticket to a team now."""

    source: str
    team: AgentRole
    reason: str


@dataclass(frozen=True, slots=True)
class NoteCommand:
    """An internal note: recorded on the ticket, never sent to the customer."""

    source: str
    text: str


@dataclass(frozen=True, slots=True)
class RefundApproveCommand:
    """Approve a refund of ``amount`` (currency None: the case's currency)."""

    source: str
    amount: Decimal
    currency: str | None


@dataclass(frozen=True, slots=True)
class RefundDenyCommand:
    """Refuse the refund, with the reason."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class CancelConfirmCommand:
    """Confirm the customer's cancellation, effective on a date (None: the notice period)."""

    source: str
    effective: dt.date | None


@dataclass(frozen=True, slots=True)
class CancelDenyCommand:
    """Close the cancellation request without cancelling (detected by mistake, withdrawn)."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    """A cancellation awaiting confirmation: the plan, the day notice was given, today (in
    UTC) and what else decides its level (§6.1, §6.3)."""

    plan: Plan
    currency: str
    requested_on: dt.date
    today: dt.date
    contract_dispute: bool = False
    price_lock: bool = False


@dataclass(frozen=True, slots=True)
class AssignCommand:
    """Assign the ticket to a staff member, by name or address (resolved by the caller)."""

    source: str
    assignee: str


Command = (
    StatusCommand
    | PriorityCommand
    | EscalateCommand
    | NoteCommand
    | RefundApproveCommand
    | RefundDenyCommand
    | AssignCommand
    | KbCommand
    | CancelConfirmCommand
    | CancelDenyCommand
)


@dataclass(frozen=True, slots=True)
class CommandError:
    """One problem for the error mail: the agent's line, what is wrong, the expected form."""

    source: str
    problem: str
    usage: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedCommands:
    """The commands at the top of a reply, the syntax errors, and the text for the customer."""

    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    remaining_text: str


def command_name(command: Command) -> CommandName:
    """The name a command was written with."""
    return _NAMES[type(command)]


_NAMES: Mapping[type[Command], CommandName] = MappingProxyType(
    {
        StatusCommand: CommandName.STATUS,
        PriorityCommand: CommandName.PRIORITY,
        EscalateCommand: CommandName.ESCALATE,
        NoteCommand: CommandName.NOTE,
        RefundApproveCommand: CommandName.REFUND,
        RefundDenyCommand: CommandName.REFUND,
        AssignCommand: CommandName.ASSIGN,
        KbCommand: CommandName.KB,
        CancelConfirmCommand: CommandName.CANCEL,
        CancelDenyCommand: CommandName.CANCEL,
    }
)


def parse_commands(new_text: str) -> ParsedCommands:
    """Split an agent's new text (quotes and signature removed) into commands and relayed text."""
    lines = new_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _COMMAND.fullmatch(line)
        if match is None:
            if line.strip():
                break
            index += 1
            continue
        index += 1
        argument = match[2].strip()
        if match[1].lower() == CommandName.NOTE:
            while index < len(lines) and lines[index].strip() and not _COMMAND.match(lines[index]):
                argument = f"{argument}\n{lines[index].strip()}".strip()
                index += 1
        parsed = _parse_one(line.strip(), match[1], argument)
        if isinstance(parsed, CommandError):
            errors.append(parsed)
        else:
            commands.append(parsed)
    remaining = lines[index:]
    errors.extend(
        CommandError(line.strip(), "commands must come before any other text of the reply")
        for line in remaining
        if _KNOWN.match(line)
    )
    errors.extend(_repeated(commands))
    return ParsedCommands(tuple(commands), tuple(errors), "\n".join(remaining).rstrip())


def known_command_lines(new_text: str) -> tuple[str, ...]:
    """The lines of ``new_text`` an agent's reply would take as known commands."""
    parsed = parse_commands(new_text)
    sources = (*(c.source for c in parsed.commands), *(e.source for e in parsed.errors))
    return tuple(source for source in dict.fromkeys(sources) if _KNOWN.match(source))


def authorize(
    command: Command,
    agent: Agent,
    refund_case: RefundCase | None = None,
    policy: RefundPolicy = DEFAULT_REFUND_POLICY,
    cancellation: CancellationRequest | None = None,
) -> Decision:
    """Whether ``agent`` may carry out ``command``, and why.

    For ``#refund`` the caller passes the ticket's open case; an approval is checked at the
    approved amount (and currency, when written), not at the amount the customer asked for.
    For ``#cancel`` it passes the open cancellation; the notice counts from its request.
    """
    name = command_name(command)
    if not agent.roles & COMMAND_ROLES[name]:
        roles = ", ".join(sorted(agent.roles)) or "no role"
        return Decision(False, f"{agent.name} ({roles}) may not use #{name}")
    if isinstance(command, KbCommand) and command.action in (KbAction.PUBLISH, KbAction.REJECT):
        if agent.roles & REVIEWER_ROLES:
            return Decision(True, f"{agent.name} may review knowledge-base articles")
        return Decision(False, f"only a Support Manager may {command.action} an article")
    if isinstance(command, CancelConfirmCommand):
        return _authorize_cancel(command.effective, agent, cancellation, policy)
    if isinstance(command, CancelDenyCommand):
        return _authorize_cancel(None, agent, cancellation, policy)
    if not isinstance(command, RefundApproveCommand | RefundDenyCommand):
        return Decision(True, f"{agent.name} may use #{name}")
    if refund_case is None:
        why = "this ticket has no open refund or credit request"
        if cancellation is not None:
            why += "; confirm its cancellation with #cancel confirm"
        return Decision(False, why)
    if isinstance(command, RefundApproveCommand):
        refund_case = dataclasses.replace(
            refund_case,
            amount=command.amount,
            currency=command.currency or refund_case.currency,
        )
    needed = required_level(refund_case, policy)
    verdict = can_approve(agent.roles, needed.level)
    return Decision(verdict.allowed, f"{agent.name}: {verdict.reason}: {needed.reason}")


def _authorize_cancel(
    effective: dt.date | None,
    agent: Agent,
    request: CancellationRequest | None,
    policy: RefundPolicy,
) -> Decision:
    if request is None:
        return Decision(False, "this ticket has no open cancellation request")
    if effective is not None and effective < request.today:
        return Decision(False, f"the effective date {effective} is before today ({request.today})")
    _, notice = cancellation_effective(request.requested_on, request.today, effective, policy)
    case = RefundCase(
        Decimal(0),
        request.currency,
        request.plan,
        None,
        RefundKind.CANCELLATION,
        request.contract_dispute,
        request.price_lock,
        notice,
    )
    needed = required_level(case, policy)
    verdict = can_approve(agent.roles, needed.level)
    return Decision(verdict.allowed, f"{agent.name}: {verdict.reason}: {needed.reason}")


def check_commands(
    parsed: ParsedCommands,
    agent: Agent,
    refund_case: RefundCase | None = None,
    policy: RefundPolicy = DEFAULT_REFUND_POLICY,
    cancellation: CancellationRequest | None = None,
) -> tuple[CommandError, ...]:
    """Every problem of a parsed reply: syntax errors, then each refused command."""
    refused = []
    for command in parsed.commands:
        decision = authorize(command, agent, refund_case, policy, cancellation)
        if not decision.allowed:
            refused.append(CommandError(command.source, decision.reason))
    return (*parsed.errors, *refused)


def _parse_one(source: str, written: str, argument: str) -> Command | CommandError:
    try:
        name = CommandName(written.lower())
    except ValueError:
        known = ", ".join(f"#{name}" for name in CommandName)
        return CommandError(source, f"unknown command #{written}; known commands: {known}")
    usage = USAGE[name]
    if not argument:
        return CommandError(source, f"#{name} needs an argument", usage)
    if name is not CommandName.NOTE and len(argument) > MAX_ARGUMENT_CHARS:
        return CommandError(source, f"argument longer than {MAX_ARGUMENT_CHARS} characters", usage)
    first, rest = (*argument.split(None, 1), "")[:2]
    match name:
        case CommandName.STATUS:
            status = next((s for s in _SETTABLE_STATUSES if s == argument.lower()), None)
            if status is not None:
                return StatusCommand(source, status)
            return CommandError(source, f"unknown status {argument!r}", usage)
        case CommandName.PRIORITY:
            level = _PRIORITY.fullmatch(argument)
            if level is not None:
                return PriorityCommand(source, Priority(f"P{level[1]}"))
            return CommandError(source, f"unknown priority {argument!r}", usage)
        case CommandName.ESCALATE:
            team = next((t for t in ESCALATION_TEAMS if t == first.lower().replace("-", "_")), None)
            if team is not None:
                return EscalateCommand(source, team, rest)
            return CommandError(source, f"unknown team {first!r}", usage)
        case CommandName.NOTE:
            return NoteCommand(source, argument)
        case CommandName.ASSIGN:
            return AssignCommand(source, argument)
        case CommandName.REFUND:
            return _refund(source, first.lower(), rest, usage)
        case CommandName.KB:
            parsed = parse_kb(source, argument)
            return CommandError(source, parsed, usage) if isinstance(parsed, str) else parsed
        case CommandName.CANCEL:
            return _cancel(source, first.lower(), rest, usage)


def _cancel(source: str, action: str, rest: str, usage: str) -> Command | CommandError:
    if action == "deny":
        return CancelDenyCommand(source, rest)
    if action != "confirm":
        return CommandError(source, f"#cancel takes confirm or deny, not {action!r}", usage)
    if not rest:
        return CancelConfirmCommand(source, None)
    keyword, _, written = rest.partition(" ")
    if keyword.lower() != "effective" or not written.strip():
        return CommandError(source, f"expected effective YYYY-MM-DD, not {rest!r}", usage)
    date = written.strip()
    try:
        if _DATE.fullmatch(date) is None:
            raise ValueError(date)
        return CancelConfirmCommand(source, dt.date.fromisoformat(date))
    except ValueError:
        return CommandError(source, f"{date!r} is not a date (YYYY-MM-DD)", usage)


def _refund(source: str, action: str, rest: str, usage: str) -> Command | CommandError:
    if action == "approve":
        amount = parse_amount(rest)
        if amount is None:
            return CommandError(source, f"{rest or 'nothing'} is not a positive amount", usage)
        return RefundApproveCommand(source, amount.value, amount.currency)
    if action == "deny":
        if rest:
            return RefundDenyCommand(source, rest)
        return CommandError(source, "#refund deny needs a reason", usage)
    return CommandError(source, f"#refund takes approve or deny, not {action!r}", usage)


def _repeated(commands: list[Command]) -> list[CommandError]:
    seen: set[CommandName] = set()
    errors = []
    for command in commands:
        name = command_name(command)
        if name in seen and name in _ONCE:
            errors.append(CommandError(command.source, f"#{name} is given more than once"))
        seen.add(name)
    return errors
