"""Collect the message ids of the code into the catalogues, and check the catalogues.

    python -m core.i18n_extract            # update core/locale/*/LC_MESSAGES/messages.po
    python -m core.i18n_extract --check    # exit 1 if a message lacks a translation

Where message ids come from:
- Python: `_("...")`, `gettext("...")`, `ngettext("...", "...", n)` and `N_("...")` (a
  text marked for translation where it is defined and translated where it is shown), read by
  Babel's Python extractor;
- JavaScript: `t("...")` and `tn("...", "...", n)` with literal strings (web/static/common/i18n.js);
- HTML: the text of elements marked `data-i18n`, and the attributes named by
  `data-i18n-attrs="aria-label title"`.

Updating keeps every translation whose message id is still used, adds the new ids untranslated
and drops the ones the code no longer uses (git has them).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import write_po

from core.i18n import DOMAIN, LOCALE_DIR, placeholders, po_path, read_catalogue
from core.preferences import DEFAULT_LOCALE, LOCALES

ROOT = Path(__file__).resolve().parents[1]
PYTHON_PACKAGES = ("core", "channels", "routing", "web", "erp_bridge")
STATIC = ROOT / "web" / "static"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
# A JavaScript string literal in double or single quotes, or a template without ${}.
_JS_STRING = r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\$]|\\.)*`)"""
_JS_T = re.compile(r"(?<![\w.$])t\(\s*" + _JS_STRING)
_JS_TN = re.compile(r"(?<![\w.$])tn\(\s*" + _JS_STRING + r"\s*,\s*" + _JS_STRING)


@dataclass(frozen=True)
class Found:
    """A message id where the code uses it; `plural` for ngettext/tn."""

    msgid: str
    plural: str | None
    location: tuple[str, int]


def _js_literal(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "'":
        body = body.replace('\\"', '"').replace('"', '\\"').replace("\\'", "'")
    if literal[0] == "`":
        body = body.replace('"', '\\"').replace("\\`", "`")
    decoded = json.loads(f'"{body}"')
    assert isinstance(decoded, str)
    return decoded


def from_javascript(text: str, name: str) -> Iterator[Found]:
    def line(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def in_comment(offset: int) -> bool:
        start = text.rfind("\n", 0, offset) + 1
        return text[start:offset].lstrip().startswith(("//", "*", "/*"))

    for match in _JS_T.finditer(text):
        if not in_comment(match.start()):
            yield Found(_js_literal(match.group(1)), None, (name, line(match.start())))
    for match in _JS_TN.finditer(text):
        if not in_comment(match.start()):
            singular, plural = _js_literal(match.group(1)), _js_literal(match.group(2))
            yield Found(singular, plural, (name, line(match.start())))


class _MarkedText(HTMLParser):
    """The texts of `data-i18n` elements and `data-i18n-attrs` attributes of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, int]] = []
        self._open: list[tuple[str, list[str], int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attribute in (values.get("data-i18n-attrs") or "").split():
            if values.get(attribute):
                self.found.append((str(values[attribute]), self.getpos()[0]))
        if "data-i18n" in values:
            self._open.append((tag, [], self.getpos()[0]))

    def handle_data(self, data: str) -> None:
        for _, parts, _ in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, parts, line = self._open.pop()
            text = " ".join("".join(parts).split())
            if text:
                self.found.append((text, line))


def from_html(text: str, name: str) -> Iterator[Found]:
    parser = _MarkedText()
    parser.feed(text)
    parser.close()
    for msgid, line in parser.found:
        yield Found(msgid, None, (name, line))


def from_python(text: str, name: str) -> Iterator[Found]:
    for line, message, _, _ in extract("python", io.BytesIO(text.encode()), keywords=KEYWORDS):
        if isinstance(message, str):
            yield Found(message, None, (name, line))
        elif message and message[0]:
            plural = message[1] if len(message) > 1 else None
            yield Found(str(message[0]), str(plural) if plural else None, (name, line))


def _files(root: Path) -> Iterator[Path]:
    for package in PYTHON_PACKAGES:
        yield from sorted((root / package).rglob("*.py"))
    yield from sorted((root / "web" / "static").rglob("*.js"))
    yield from sorted((root / "web" / "static").rglob("*.html"))


def collect(root: Path = ROOT) -> list[Found]:
    """Every message id the code at `root` uses."""
    found: list[Found] = []
    readers = {".py": from_python, ".js": from_javascript, ".html": from_html}
    for path in _files(root):
        name = path.relative_to(root).as_posix()
        found.extend(readers[path.suffix](path.read_text("utf-8"), name))
    return found


def template(found: Iterable[Found]) -> Catalog:
    catalogue = Catalog(domain=DOMAIN, project="omnicrm", fuzzy=False)
    for item in found:
        msgid: str | tuple[str, str] = (
            (item.msgid, item.plural) if item.plural is not None else item.msgid
        )
        existing = catalogue.get(item.msgid)
        if existing is not None:
            existing.locations.append(item.location)
            if item.plural is not None and isinstance(existing.id, str):
                existing.id = msgid
            continue
        catalogue.add(msgid, locations=[item.location])
    return catalogue


def _new_catalogue(locale: str) -> Catalog:
    return Catalog(
        locale=locale,
        domain=DOMAIN,
        header_comment=f"# omnicrm's messages in {Locale.parse(locale).english_name}.",
        project="omnicrm",
        version="1",
        copyright_holder="omnicrm contributors",
        msgid_bugs_address="",
        last_translator="omnicrm contributors",
        language_team=locale,
        fuzzy=False,
    )


def update(root: Path = ROOT, locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Write every catalogue (a new language gets a new one); the paths written. Running it
    again without changes to the code changes nothing."""
    source = template(collect(root))
    written = []
    for locale in LOCALES:
        if locale == DEFAULT_LOCALE:
            continue
        if po_path(locale, locale_dir).is_file():
            catalogue = read_catalogue(locale, locale_dir)
        else:
            catalogue = _new_catalogue(locale)
        created = catalogue.creation_date
        catalogue.update(source, no_fuzzy_matching=True, update_header_comment=False)
        catalogue.creation_date = created
        catalogue.obsolete.clear()
        path = po_path(locale, locale_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            # Files without line numbers: an edit that only moves a text keeps the
            # catalogues in step (only new, changed or removed texts need an extract).
            write_po(file, catalogue, width=100, ignore_obsolete=True, include_lineno=False)
        written.append(str(path))
    return written


def problems(locale: str, found: Iterable[Found], locale_dir: Path = LOCALE_DIR) -> list[str]:
    """What is wrong with `locale`'s catalogue for the code: message ids without a
    translation (or with too few plural forms), and placeholders that differ."""
    catalogue = read_catalogue(locale, locale_dir)
    wrong: list[str] = []
    seen: set[str] = set()
    for item in found:
        if item.msgid in seen:
            continue
        seen.add(item.msgid)
        where = f"{item.location[0]}:{item.location[1]}"
        message = catalogue.get(item.msgid)
        if message is None or message.fuzzy:
            wrong.append(f"{locale}: no translation of {item.msgid!r} ({where})")
            continue
        expected = placeholders(item.msgid) | (
            placeholders(item.plural) if item.plural else frozenset()
        )
        strings = [message.string] if isinstance(message.string, str) else [*(message.string or ())]
        if item.plural is not None and len(strings) != catalogue.num_plurals:
            wrong.append(f"{locale}: {item.msgid!r} needs {catalogue.num_plurals} plural forms")
            continue
        for string in strings:
            if not string:
                wrong.append(f"{locale}: no translation of {item.msgid!r} ({where})")
                break
            if not _same_placeholders(string, expected, plural=item.plural is not None):
                wrong.append(f"{locale}: placeholders of {item.msgid!r} differ in {string!r}")
    return wrong


def _same_placeholders(string: str, expected: frozenset[str], *, plural: bool) -> bool:
    """A translation uses the message id's placeholders; a plural form may leave out {n}
    (Russian "one" forms often say the number in words)."""
    if plural:
        return expected - {"n"} <= placeholders(string) <= expected | {"n"}
    return placeholders(string) == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.i18n_extract", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    arguments = parser.parse_args(argv)
    if not arguments.check:
        for path in update():
            sys.stdout.write(f"wrote {path}\n")
    found = collect()
    wrong = [
        line for locale in LOCALES if locale != DEFAULT_LOCALE for line in problems(locale, found)
    ]
    for line in wrong:
        sys.stdout.write(line + "\n")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
