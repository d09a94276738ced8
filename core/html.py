"""Customer HTML is sanitized before it is stored or shown."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import nh3

# Links keep working but cannot run code or reach into the page (javascript:, data:).
URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_BLOCK_END = re.compile(r"</(p|div|li|tr|h[1-6]|blockquote)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_BLANK_LINES = re.compile(r"\n{3,}")


def sanitize_html(raw: str) -> str:
    """Make customer HTML safe to store and show: no scripts, event handlers or dangerous
    URLs, and nothing that loads from the network until an operator asks (see
    block_remote_content). Idempotent: sanitizing sanitized HTML changes nothing."""
    cleaned = nh3.clean(
        raw,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        generic_attribute_prefixes={_BLOCKED_PREFIX},
    )
    return block_remote_content(cleaned)


def html_to_text(raw: str) -> str:
    """Plain text for an HTML-only message (search, previews, notifications)."""
    cleaned = nh3.clean(raw, tags={"p", "div", "li", "tr", "br", "blockquote"})
    cleaned = _BLOCK_END.sub("\n", cleaned)
    text = html_lib.unescape(_TAG.sub("", cleaned))
    lines = (line.strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# Attributes that make a browser fetch something as soon as the HTML is shown.
_LOADING_ATTRIBUTES = {"src", "srcset", "background", "poster", "lowsrc", "dynsrc"}
_BLOCKED_PREFIX = "data-omnicrm-"
_CSS_URL = re.compile(r"url\s*\(|@import|image-set\s*\(|expression\s*\(", re.IGNORECASE)


def _loads_remote(attribute: str, value: str) -> bool:
    if attribute in _LOADING_ATTRIBUTES:
        # Only cid: (an attached part) is local; relative URLs would load from omnicrm itself.
        return not value.strip().lower().startswith("cid:")
    return attribute == "style" and _CSS_URL.search(value) is not None


class _RemoteContentMover(HTMLParser):
    """Re-emits HTML with loading attributes renamed to data-omnicrm-* (kept for "load images")."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, self.get_starttag_text() or "", closed=False))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, self.get_starttag_text() or "", closed=True))

    def _tag(
        self, tag: str, attrs: list[tuple[str, str | None]], original: str, *, closed: bool
    ) -> str:
        if not any(value is not None and _loads_remote(name, value) for name, value in attrs):
            return original
        rendered = []
        for name, value in attrs:
            if value is None:
                rendered.append(f" {name}")
                continue
            shown = f"{_BLOCKED_PREFIX}{name}" if _loads_remote(name, value) else name
            rendered.append(f' {shown}="{html_lib.escape(value, quote=True)}"')
        return f"<{tag}{''.join(rendered)}{' /' if closed else ''}>"

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")


def _only_local_loads(tag: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: drop any loading attribute that would still reach the network."""
    return None if _loads_remote(attribute, value) else value


def block_remote_content(sanitized_html: str) -> str:
    """Neutralize remote images and resources in sanitized HTML; cid: references stay.

    Each loading attribute (src, srcset, background, CSS url()) that is not a cid: reference
    is renamed to data-omnicrm-<name>, so the console can offer to load it on request. The
    result goes through nh3 again, whose attribute filter drops anything that still loads.
    """
    mover = _RemoteContentMover()
    mover.feed(sanitized_html)
    mover.close()
    return nh3.clean(
        "".join(mover.out),
        generic_attribute_prefixes={_BLOCKED_PREFIX},
        attribute_filter=_only_local_loads,
        # The input is already sanitized; this only has to keep what sanitize_html kept.
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
