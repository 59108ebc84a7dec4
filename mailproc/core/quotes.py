"""Quoted-reply stripping: split a reply body into new text, signature and quoted history."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# "On <date>, <name> wrote:" and its translations; the header may wrap over up to three lines.
_WROTE = re.compile(
    r"^.{0,400}?\b(?:wrote|writes|escribi[óo]|a\s+[ée]crit|schrieb|ha\s+scritto|schreef"
    r"|escreveu|napisa[łl]\w*|pisze|skrev|kirjoitti|написал\w*|napsal\w*)\b"
    r"[^:\n]{0,120}?\s*(?P<colon>:)?\s*$",
    re.IGNORECASE,
)
# Without a colon, a header must open like one: "On Wed, 14 Nov 2018 … John <j@x.com> wrote".
_HEADER_OPENING = re.compile(
    r"^(?:on|el|le|am|il|op|em|dnia|w dniu|den|dne|kello)\s.{0,40}?\d", re.IGNORECASE
)
# Date-first headers without a verb: "26.06.2014, 14:41, "Ann" <ann@example.com>:".
_DATED_ADDRESS = re.compile(
    r"^.{0,200}\d.{0,200}?<?[\w.+'-]+@[\w-]+(?:\.[\w-]+)+>?\s*:\s*$", re.IGNORECASE
)
_HEADER_HINT = re.compile(r"\d|@")
# A wrapped header goes on with text, or with the ">:" some clients leave after an address.
_HEADER_CONTINUATION = re.compile(r"^\s*(?:[^>\s]|>\s*:\s*$)")
_OUTLOOK_FROM = re.compile(
    r"^\s*[*_]?(?:from|de|von|da|van|fr[åa]n|fra|od|от|lähettäjä|feladó|kimden)[*_]?\s*:\s*\S",
    re.IGNORECASE,
)
_OUTLOOK_FIELD = re.compile(
    r"^\s*[*_]?(?:sent|date|to|subject|cc|envoy[ée](?:\s+le)?|[àa]|objet|sujet|copie\s+[àa]"
    r"|message\s+du|enviado(?:\s+el)?|fecha|para|asunto|gesendet|datum|an|betreff|inviato|data"
    r"|oggetto|verzonden|aan|onderwerp|skickat|till|ämne|sendt|dato|til|emne|wysłano|do|temat"
    r"|отправлено|кому|тема|lähetetty|vastaanottaja|aihe)[*_]?\s*:",
    re.IGNORECASE,
)
_SEPARATOR_PHRASE = re.compile(
    r"^\s*(?:-{2,}|_{2,})?\s*(?:original message|mensaje original|message d'origine"
    r"|message original|ursprüngliche nachricht|originalnachricht|messaggio originale"
    r"|oorspronkelijk bericht|mensagem original|oprindelig (?:besked|meddelelse)"
    r"|originalmeddelande|opprinnelig melding|alkuperäinen viesti|wiadomość oryginalna"
    r"|исходное сообщение|forwarded message|mensaje reenviado|message transf[ée]r[ée]"
    r"|weitergeleitete nachricht|messaggio inoltrato|doorgestuurd bericht"
    r"|mensagem encaminhada|begin forwarded message|d[ée]but du message r[ée]exp[ée]di[ée]"
    r"|inicio del mensaje reenviado|anfang der weitergeleiteten nachricht)\s*:?\s*(?:-{2,})?\s*$",
    re.IGNORECASE,
)
_DASH_WRAPPED_WROTE = re.compile(
    r"^\s*-{2,}.*\b(?:wrote|escribi[óo]|a [ée]crit|schrieb)\b.*-{2,}\s*$"
)
_RULE = re.compile(r"^\s*(?:[-_=*]{2,})\s*$")
_SIG_DELIMITER = re.compile(r"^(?:--|__+|—)$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:sent (?:from|with|via) |get outlook for |envoy[ée] (?:de|depuis|à partir de|avec) "
    r"|enviado (?:desde|de|con|do) |von meinem .{0,40}gesendet|gesendet (?:von|mit) "
    r"|inviato da |verzonden (?:met|vanaf) |skickat från |wysłane z |отправлено с )",
    re.IGNORECASE,
)
_VALEDICTION = re.compile(
    r"^\s*(?:(?:best|kind|warm|warmest|many thanks and)?\s*regards|best wishes|cheers|thank you"
    r"|thanks|many thanks|saludos(?: cordiales)?|un saludo|atentamente|cordialmente|gracias"
    r"|cordialement|bien cordialement|bien à vous|salutations(?: distinguées)?|merci"
    r"|mit freundlichen grüßen|viele grüße|beste grüße|liebe grüße)\s*[,.!]*\s*$",
    re.IGNORECASE,
)
# A line above included mail that reads as its header: an address, a date, a ticket tag.
_INCLUDED_HEADER = re.compile(
    r"^[^.!?]{0,80}<?[\w.+'-]+@[\w-]+(?:\.[\w-]+)+>?\s*$|^[\d\s/.:,-]*(?:[ap]\.?m\.?)?\s*$"
    r"|\[ticket\s*#\d+\]|\b(?:wrote|escribi[óo]|a\s+[ée]crit|schrieb)\b",
    re.IGNORECASE,
)
_MIN_INCLUDED_CHARS = 12  # shorter lines ("Thanks,") are too common to prove an inclusion
_MAX_INCLUDED_HEADER = 8
_MAX_HEADER_LINES = 3
_TAIL_LINES = 6  # a sign-off or the sender's name starts a signature only this near the end
_RULE_TAIL_LINES = 16  # the same for a rule line (----) above a longer signature block
_SHORT_LINE = 72


@dataclass(frozen=True, slots=True)
class ReplyParts:
    """A reply body split into what the sender wrote now, their signature and quoted history."""

    new_text: str
    signature: str
    quoted: str

    @property
    def reply(self) -> str:
        """Everything the sender wrote now: new text and signature, without quoted history."""
        return "\n\n".join(part for part in (self.new_text, self.signature) if part)


def split_reply(text: str, sender_name: str | None = None) -> ReplyParts:
    """Split a plain-text body; ``sender_name`` helps spot a signature that starts with it."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    quoted = _quoted_lines(lines)
    own = [line for line, is_quoted in zip(lines, quoted, strict=True) if not is_quoted]
    history = [line for line, is_quoted in zip(lines, quoted, strict=True) if is_quoted]
    cut = _signature_start(own, sender_name)
    return ReplyParts(_join(own[:cut]), _join(own[cut:]), _join(history))


def cut_at_included(text: str, included: Iterable[str]) -> str:
    """``text`` up to where one of the ``included`` mails (our own, pasted without ">" as Lotus
    Notes and some Outlook set-ups do) begins: two lines in a row copied from them, together
    with the header block right above (From/Sent/Subject fields, an address, a date)."""
    known = {
        " ".join(line.split())
        for mail in included
        for line in mail.splitlines()
        if len(line.strip()) >= _MIN_INCLUDED_CHARS
    }
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    for position, index in enumerate(content):
        following = content[position + 1 : position + 2]
        if " ".join(lines[index].split()) in known and all(
            " ".join(lines[i].split()) in known for i in following
        ):
            return _join(lines[: _included_header_start(lines, index)])
    return text


def _included_header_start(lines: list[str], index: int) -> int:
    """Where the header block above included mail at ``index`` starts (blank lines too)."""
    start = index
    for above in range(index - 1, max(-1, index - 1 - _MAX_INCLUDED_HEADER), -1):
        line = lines[above].strip()
        if line and not (
            _INCLUDED_HEADER.search(line)
            or _OUTLOOK_FROM.match(line)
            or _OUTLOOK_FIELD.match(line)
            or _RULE.match(line)
            or _SEPARATOR_PHRASE.match(line)
            or _WROTE.match(line)
        ):
            break
        start = above
    return start


def _join(lines: list[str]) -> str:
    """Join lines with blank runs (left where quotes were removed) cut to one blank line."""
    kept: list[str] = []
    for line in lines:
        if line.strip() or (kept and kept[-1].strip()):
            kept.append(line if line.strip() else "")
    return "\n".join(kept).rstrip("\n")


def _quoted_lines(lines: list[str]) -> list[bool]:
    """Mark each line as quoted history (True) or the sender's own text (False).

    One pass over the lines, each looked at a bounded number of times: linear in the text.
    """
    quote_ahead = _quote_ahead(lines)
    marks = [False] * len(lines)
    index = 0
    while index < len(lines):
        header_end = _wrote_header_end(lines, index, quote_ahead)
        if header_end is not None:
            marks[index:header_end] = [True] * (header_end - index)
            if not quote_ahead[header_end]:
                marks[header_end:] = [True] * (len(lines) - header_end)
                break
            index = header_end
            continue
        block_start = _history_block_start(lines, index)
        if block_start is not None:
            marks[block_start:] = [True] * (len(lines) - block_start)
            break
        # A line wrapped inside a quote loses its ">": it sits between two quoted lines.
        marks[index] = _is_quote(lines[index]) or (
            index > 0 and marks[index - 1] and _next_line_is_quote(lines, index + 1)
        )
        index += 1
    return marks


def _quote_ahead(lines: list[str]) -> list[bool]:
    """For each index (and one past the end), whether the first non-blank line from there on
    is a ``>`` quote; computed backwards in one pass."""
    ahead = [False] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        ahead[index] = _is_quote(line) if line.strip() else ahead[index + 1]
    return ahead


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _wrote_header_end(lines: list[str], index: int, quote_ahead: list[bool]) -> int | None:
    """If an "On … wrote:" header starts at ``index``, return the index just after it."""
    first = lines[index].strip()
    if not first or first.startswith(">") or first.endswith((".", "!", "?")):
        return None
    if not _HEADER_HINT.search(first):
        # Without a date or address, "Ann wrote:" counts only right above a quote.
        return index + 1 if quote_ahead[index + 1] and _is_wrote_header([first]) else None
    for end in range(index + 1, min(index + _MAX_HEADER_LINES, len(lines)) + 1):
        if end > index + 1 and not _HEADER_CONTINUATION.match(lines[end - 1]):
            return None
        if _is_wrote_header(lines[index:end]):
            return end
    return None


def _is_wrote_header(lines: list[str]) -> bool:
    """True when these lines, joined, read as one "On … wrote:" style quote header."""
    joined = " ".join(line.strip() for line in lines)
    if not joined.endswith(":") and not _HEADER_OPENING.match(joined):
        return False  # cheap exit for almost every line
    match = _WROTE.match(joined)
    if match is not None:
        return match["colon"] is not None or bool(_HEADER_OPENING.match(joined))
    return bool(_DATED_ADDRESS.match(joined))


def _next_line_is_quote(lines: list[str], index: int) -> bool:
    """True when the line at ``index`` exists and is a ``>`` quote."""
    return index < len(lines) and _is_quote(lines[index])


def _history_block_start(lines: list[str], index: int) -> int | None:
    """Start of a forwarded/Outlook history block at ``index`` (widened upwards), else None."""
    line = lines[index]
    if _SEPARATOR_PHRASE.match(line) or _DASH_WRAPPED_WROTE.match(line):
        return index
    if not _OUTLOOK_FROM.match(line):
        return None
    following = lines[index + 1 : index + 7]
    if not any(_OUTLOOK_FIELD.match(other) for other in following):
        return None
    start = index
    while start > 0 and _OUTLOOK_FIELD.match(lines[start - 1]):
        start -= 1
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and (_RULE.match(lines[above]) or _SEPARATOR_PHRASE.match(lines[above])):
        return above
    return start


def _signature_start(own: list[str], sender_name: str | None) -> int:
    """Index in ``own`` where the signature begins (``len(own)`` when there is none)."""
    content = [i for i, line in enumerate(own) if line.strip()]
    if not content:
        return len(own)
    first_text = content[0]
    for i in content[1:]:
        stripped = own[i].strip()
        if _SIG_DELIMITER.match(stripped):
            return i
        if _MOBILE_FOOTER.match(stripped) and ", " not in stripped:
            return i
    name = _name_pattern(sender_name)
    for position in range(max(1, len(content) - _TAIL_LINES), len(content)):
        i = content[position]
        stripped = own[i].strip()
        if name is not None and len(stripped) <= _SHORT_LINE and name.match(stripped):
            return i
        following = content[position + 1] if position + 1 < len(content) else None
        if _VALEDICTION.match(stripped) and following is not None:
            signer = own[following].strip()  # a name or title, not another sentence
            if len(signer) <= _SHORT_LINE and not signer.endswith((".", "?", "!", ":")):
                return i
    for i in content[-_RULE_TAIL_LINES:]:
        if i > first_text and _RULE.match(own[i]) and not own[i - 1].strip():
            return i
    return len(own)


def _name_pattern(sender_name: str | None) -> re.Pattern[str] | None:
    """A pattern for a line opening with the sender's full name (or mailbox name)."""
    if not sender_name:
        return None
    name = sender_name.split("@", 1)[0].strip().strip('"')
    words = [re.escape(w) for w in re.split(r"[\s._+-]+", name) if len(w) >= 2]
    if not words:
        return None
    return re.compile(r"\W{0,6}" + r"[\s.]+".join(words) + r"\b", re.IGNORECASE)


def split_sign_off(text: str, rest: str = "") -> tuple[str, str | None]:
    """``text`` without its closing line, and that line ("Best regards,", "Saludos,", …).

    The closing is the last line of ``text``, or else the first line of ``rest`` (the
    signature split off after it); None when there is none, or nothing would be left.
    """
    lines = text.rstrip().split("\n")
    if len(lines) > 1 and _VALEDICTION.match(lines[-1]):
        return "\n".join(lines[:-1]).rstrip(), lines[-1].strip()
    first = rest.strip().split("\n", 1)[0]
    if text.strip() and _VALEDICTION.match(first):
        return text.rstrip(), first.strip()
    return text.rstrip(), None
