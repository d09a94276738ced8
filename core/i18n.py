"""Translations: gettext catalogues read with Babel, for the server and the browser alike.

The catalogues are `core/locale/<lang>/LC_MESSAGES/messages.po`; English is the source
language (the message ids), so it has no catalogue. They are read as they are, when first
asked for (no compile step): the server translates with `translator(locale)`, the browser
gets the same catalogue as JSON from `/i18n/<locale>.json` (`client_catalogue`).

Placeholders are `{name}` (the same in Python and JavaScript): a translation must use the same
names as its message id. `python -m core.i18n_extract` collects the message ids from the code.
"""

from __future__ import annotations

import functools
import gettext as stdlib_gettext
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel import Locale, negotiate_locale
from babel.dates import format_datetime as babel_format_datetime
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from core.preferences import DEFAULT_LOCALE, LOCALES

LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"
DOMAIN: Final = "messages"
# Plural categories in CLDR's order; JavaScript's Intl.PluralRules answers one of these.
CATEGORIES: Final = ("zero", "one", "two", "few", "many", "other")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_LANGUAGE_RANGE = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$|^\*$")
# The numbers whose plural form tells which form each CLDR category takes.
_SAMPLES: Final = range(0, 1001)

Translation = str | tuple[str, ...]


def N_(msgid: str) -> str:
    """Mark a text for translation where it is defined; it is translated where it is shown."""
    return msgid


def po_path(locale: str, root: Path = LOCALE_DIR) -> Path:
    return root / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def fill(text: str, values: Mapping[str, object]) -> str:
    """`text` with each `{name}` replaced by `values[name]`; unknown names stay as they are
    (never str.format: a translation cannot reach attributes of the values)."""
    if not values:
        return text
    return _PLACEHOLDER.sub(
        lambda match: str(values[match.group(1)]) if match.group(1) in values else match.group(0),
        text,
    )


def placeholders(text: str) -> frozenset[str]:
    return frozenset(_PLACEHOLDER.findall(text))


@dataclass(frozen=True)
class Translator:
    """One language's messages; English (or a message it lacks) reads as the message id."""

    locale: str
    messages: Mapping[str, Translation] = field(default_factory=dict)
    plural: Callable[[int], int] = field(default=lambda n: int(n != 1))

    def gettext(self, msgid: str, **values: object) -> str:
        found = self.messages.get(msgid)
        text = found if isinstance(found, str) and found else msgid
        return fill(text, values)

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The form for `n`; `{n}` is filled with n in the locale's digits."""
        all_values = {"n": self.format_number(n), **values}
        forms = self.messages.get(singular)
        if isinstance(forms, tuple) and forms:
            form = forms[min(self.plural(n), len(forms) - 1)]
            if form:
                return fill(form, all_values)
        return fill(singular if n == 1 else plural, all_values)

    def format_number(self, number: float) -> str:
        return str(format_decimal(number, locale=self.locale))

    def format_datetime(self, moment: datetime, time_zone: str = "UTC") -> str:
        return str(
            babel_format_datetime(moment, "medium", tzinfo=ZoneInfo(time_zone), locale=self.locale)
        )


def read_catalogue(locale: str, root: Path = LOCALE_DIR) -> Catalog:
    """The catalogue of `locale` as written; an empty one if it has none (English)."""
    path = po_path(locale, root)
    if not path.is_file():
        return Catalog(locale=locale, domain=DOMAIN)
    with path.open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


def messages_of(catalogue: Catalog) -> dict[str, Translation]:
    """msgid (a plural's singular) -> translation or forms; untranslated and fuzzy left out."""
    messages: dict[str, Translation] = {}
    for message in catalogue:
        if not message.id or message.fuzzy:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        if isinstance(message.string, str):
            if message.string:
                messages[key] = message.string
        elif message.string and all(message.string):
            messages[key] = tuple(message.string)
    return messages


def plural_function(catalogue: Catalog) -> Callable[[int], int]:
    """The catalogue's gettext plural expression (its Plural-Forms header) as a function."""
    return stdlib_gettext.c2py(catalogue.plural_expr)


@functools.cache
def translator(locale: str) -> Translator:
    """The translator of a supported locale; anything else gets English."""
    if locale not in LOCALES or locale == DEFAULT_LOCALE:
        return Translator(DEFAULT_LOCALE)
    catalogue = read_catalogue(locale)
    return Translator(locale, messages_of(catalogue), plural_function(catalogue))


def plural_index(catalogue: Catalog, locale: str) -> dict[str, int]:
    """Which gettext form each CLDR plural category takes, for the browser (which knows the
    category of a number from Intl.PluralRules, not the catalogue's expression).

    A category is matched by the whole numbers CLDR puts in it; one without whole numbers
    (Russian "other" is for fractions) takes the last form."""
    rule = Locale.parse(locale).plural_form
    expression = plural_function(catalogue)
    last = catalogue.num_plurals - 1
    index: dict[str, int] = {}
    for n in _SAMPLES:
        index.setdefault(rule(n), min(expression(n), last))
    for category in CATEGORIES:
        if category in rule.tags or category == "other":
            index.setdefault(category, last)
    return {category: index[category] for category in CATEGORIES if category in index}


@functools.cache
def client_catalogue(locale: str) -> dict[str, Any]:
    """The `/i18n/<locale>.json` document (see web/static/common/i18n.js)."""
    catalogue = read_catalogue(locale)
    messages = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in messages_of(catalogue).items()
    }
    return {
        "locale": locale,
        "locales": list(LOCALES),
        "plural_index": plural_index(catalogue, locale),
        "messages": messages,
    }


def parse_accept_language(header: str | None) -> list[str]:
    """The language ranges of an Accept-Language header, most wanted first (q=0 left out)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:50]):
        tag, _, parameters = part.strip().partition(";")
        tag = tag.strip()
        if not tag or not _LANGUAGE_RANGE.match(tag):
            continue
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, wanted: str | None = None) -> str:
    """The supported locale for a visitor: `wanted` (an explicit choice, e.g. `?lang=de`) if
    supported, else the best match of their Accept-Language header, else English."""
    if wanted:
        chosen = negotiate_locale([wanted.strip()], LOCALES, sep="-")
        chosen = chosen or negotiate_locale([wanted.strip()], LOCALES, sep="_")
        if chosen:
            return chosen
    preferred = parse_accept_language(accept_language)
    found = negotiate_locale(preferred, LOCALES, sep="-") if preferred else None
    return found or DEFAULT_LOCALE
