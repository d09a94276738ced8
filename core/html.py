"""Customer HTML is sanitized before it is stored or shown."""

from __future__ import annotations

import html as html_lib
import re

import nh3

# Links keep working but cannot run code or reach into the page (javascript:, data:).
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_BLOCK_END = re.compile(r"</(p|div|li|tr|h[1-6]|blockquote)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_BLANK_LINES = re.compile(r"\n{3,}")


def sanitize_html(raw: str) -> str:
    """Remove scripts, event handlers, styles and dangerous URLs; keep the readable markup."""
    return nh3.clean(raw, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def html_to_text(raw: str) -> str:
    """Plain text for an HTML-only message (search, previews, notifications)."""
    cleaned = nh3.clean(raw, tags={"p", "div", "li", "tr", "br", "blockquote"})
    cleaned = _BLOCK_END.sub("\n", cleaned)
    text = html_lib.unescape(_TAG.sub("", cleaned))
    lines = (line.strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
