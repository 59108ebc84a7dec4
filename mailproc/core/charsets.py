"""Charset detection for undeclared 8-bit mail text (GB2312, Big5, Shift_JIS, EUC, cp1252)."""

from __future__ import annotations

from charset_normalizer import from_bytes

# Charsets undeclared 8-bit mail text comes in, and the script each one is written in.
_CANDIDATE_CHARSETS = ("gb18030", "big5", "shift_jis", "euc_jp", "euc_kr", "cp1252")
_SCRIPTS = {
    "gb18030": "han",
    "big5": "han",
    "shift_jis": "kana",
    "cp932": "kana",
    "euc_jp": "kana",
    "euc_kr": "hangul",
    "cp949": "hangul",
}


def detect_charset(data: bytes) -> str | None:
    """The charset of undeclared 8-bit text: charset-normalizer's candidates, ranked by how
    much of the decoded text is in the script of that charset (short CJK text fools its own
    ranking: GB2312 bytes also read as EUC-KR)."""
    matches = list(from_bytes(data, cp_isolation=list(_CANDIDATE_CHARSETS)))
    if not matches:
        return None
    ranked = sorted(
        enumerate(matches),
        key=lambda item: (-_script_share(str(item[1]), item[1].encoding), item[0]),
    )
    return str(ranked[0][1].encoding)


def _script_share(text: str, charset: str) -> float:
    """The share of non-ASCII characters in ``text`` typical of ``charset``'s script."""
    letters = [c for c in text if ord(c) > 0x7F]
    if not letters:
        return 1.0
    script = _SCRIPTS.get(charset.lower().replace("-", "_"), "latin")
    typical = sum(1 for c in letters if _in_script(ord(c), script))
    if charset.lower().startswith("gb"):  # GBK's rarer characters hint at Big5 bytes misread
        typical -= sum(1 for c in letters if not _decodes_back(c, "gb2312"))
    share = typical / len(letters)
    if script == "kana" and not any(0x3040 <= ord(c) <= 0x30FF for c in letters):
        share /= 2  # Japanese text without a single kana is unlikely
    return share


def _decodes_back(char: str, charset: str) -> bool:
    try:
        char.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _in_script(code: int, script: str) -> bool:
    punctuation = 0x3000 <= code <= 0x303F or 0xFF01 <= code <= 0xFF5E
    han = 0x4E00 <= code <= 0x9FFF or punctuation
    if script == "han":
        return han
    if script == "kana":
        return han or 0x3040 <= code <= 0x30FF
    if script == "hangul":
        return 0xAC00 <= code <= 0xD7A3 or punctuation
    return code < 0x250 or 0x2010 <= code <= 0x20AC
