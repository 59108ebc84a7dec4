"""Mail text made plain: HTML rendered as text (inscriptis), control characters dropped."""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=False, display_images=False)
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def html_to_text(html: str) -> str:
    """Render HTML as plain text; scripts, styles and markup never reach the result."""
    if not html.strip():
        return ""
    try:
        text = get_text(html, _HTML_CONFIG)
    except (ValueError, TypeError):  # lxml rejects some documents outright
        text = re.sub(r"<[^>]*>", " ", html)
    return tidy_text(text)


def tidy_text(text: str) -> str:
    """Line ends unified, trailing spaces and control characters dropped, few blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", CONTROL_CHARS.sub("", text))
