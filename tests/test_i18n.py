"""Translations: the catalogues, negotiation, plural forms, extraction and completeness."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from core.i18n import (
    client_catalogue,
    fill,
    negotiate,
    parse_accept_language,
    plural_index,
    po_path,
    read_catalogue,
    translator,
)
from core.i18n_extract import Found, collect, from_html, from_javascript, problems, update
from core.preferences import LOCALES

TRANSLATED = [locale for locale in LOCALES if locale != "en"]


@pytest.mark.parametrize(
    ("header", "wanted", "expected"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
        ("fr-FR, fr;q=0.9, ru;q=0.5", None, "ru"),
        ("ru;q=0, de;q=0.3", None, "de"),
        ("en-US,en;q=0.9,ru;q=0.8", None, "en"),
        ("fr", None, "en"),
        ("", None, "en"),
        (None, None, "en"),
        ("*", None, "en"),
        ("de;q=abc, ru", None, "ru"),
        ("\x00;;,,", None, "en"),
        ("de", "ru", "ru"),
        ("de", "ru-RU", "ru"),
        ("de", "xx", "de"),
    ],
)
def test_a_visitor_gets_the_best_supported_language(
    header: str | None, wanted: str | None, expected: str
) -> None:
    assert negotiate(header, wanted) == expected


def test_accept_language_is_ranked_by_quality_then_order() -> None:
    assert parse_accept_language("fr;q=0.5, de, ru;q=0.9, en;q=0") == ["de", "ru", "fr"]


def test_russian_plural_categories_map_to_the_catalogues_forms() -> None:
    index = plural_index(read_catalogue("ru"), "ru")
    assert index["one"] == 0  # 1, 21
    assert index["few"] == 1  # 3, 22
    assert index["many"] == 2  # 5, 11
    assert index["other"] == 2  # fractions: no whole number, the last form
    assert plural_index(read_catalogue("de"), "de") == {"one": 0, "other": 1}


def test_the_server_picks_plural_forms_by_the_catalogues_expression() -> None:
    ru = translator("ru")
    forms = {
        n: ru.ngettext(
            "Please wait {n} second and try again.", "Please wait {n} seconds and try again.", n
        )
        for n in (1, 3, 5, 11, 21, 22)
    }
    assert forms[1] == "Подождите 1 секунду и попробуйте ещё раз."
    assert forms[21] == "Подождите 21 секунду и попробуйте ещё раз."
    assert forms[3] == "Подождите 3 секунды и попробуйте ещё раз."
    assert forms[22].startswith("Подождите 22 секунды")
    assert forms[5] == "Подождите 5 секунд и попробуйте ещё раз."
    assert forms[11].startswith("Подождите 11 секунд ")
    en = translator("en")
    assert en.ngettext("{n} file", "{n} files", 1) == "1 file"
    assert en.ngettext("{n} file", "{n} files", 1000) == "1,000 files"
    assert translator("de").format_number(1234.5) == "1.234,5"


def test_unknown_locales_and_messages_read_as_english() -> None:
    assert translator("xx").gettext("Thank you") == "Thank you"
    assert translator("de").gettext("Thank you") == "Vielen Dank"
    assert translator("de").gettext("No such message {x}", x=1) == "No such message 1"


def test_placeholders_are_filled_without_reaching_into_values() -> None:
    assert fill("{a} and {b}", {"a": 1}) == "1 and {b}"
    assert fill("{a.__class__}", {"a": 1}) == "{a.__class__}"


def test_the_browser_catalogue_is_the_same_catalogue() -> None:
    document = client_catalogue("ru")
    assert document["locale"] == "ru"
    assert document["locales"] == list(LOCALES)
    assert document["plural_index"]["few"] == 1
    assert document["messages"]["Sign in"] == "Войти"
    assert document["messages"]["Please wait {n} second and try again."] == [
        "Подождите {n} секунду и попробуйте ещё раз.",
        "Подождите {n} секунды и попробуйте ещё раз.",
        "Подождите {n} секунд и попробуйте ещё раз.",
    ]
    assert client_catalogue("en")["messages"] == {}


def test_javascript_calls_and_marked_html_are_extracted() -> None:
    script = (
        'toast(t("Saved {name}", { name }));\n'
        '// t("In a comment")\n'
        "const label = tn('{n} file', \"{n} files\", n);\n"
        'object.t("not ours"); format("not ours"); t(variable);\n'
        't("Say \\"hi\\"");\n'
    )
    found = list(from_javascript(script, "x.js"))
    assert [(item.msgid, item.plural) for item in found] == [
        ("Saved {name}", None),
        ('Say "hi"', None),
        ("{n} file", "{n} files"),
    ]
    page = (
        "<title data-i18n>Sign in</title><h1 data-i18n>\n  Two\n  words </h1>"
        '<button data-i18n-attrs="aria-label title" aria-label="Close" title="Close it">x</button>'
        "<p>not marked</p>"
    )
    assert [item.msgid for item in from_html(page, "x.html")] == [
        "Sign in",
        "Two words",
        "Close",
        "Close it",
    ]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_the_code_uses_is_translated(locale: str) -> None:
    """Fails when code uses a message id the catalogue lacks: run
    `python -m core.i18n_extract`, then translate the new entries of core/locale/*/."""
    found = collect()
    assert {"Sign in", "Please fill in this field.", "Reassign"} <= {item.msgid for item in found}
    assert problems(locale, found) == []


def test_missing_translations_and_placeholder_mismatches_are_reported(tmp_path: Path) -> None:
    catalogue = Catalog(locale="ru")
    catalogue.add("Hello {name}", "Привет, {имя}")
    catalogue.add(("{n} file", "{n} files"), ("{n} файл", "{n} файла", ""))
    catalogue.add("Bye", "Пока")
    path = po_path("ru", tmp_path)
    path.parent.mkdir(parents=True)
    with path.open("wb") as file:
        write_po(file, catalogue)
    found = [
        Found("Hello {name}", None, ("a.py", 1)),
        Found("{n} file", "{n} files", ("a.js", 2)),
        Found("Bye", None, ("a.py", 3)),
        Found("New", None, ("a.py", 4)),
    ]
    reported = problems("ru", found, tmp_path)
    assert len(reported) == 3, reported
    assert "placeholders of 'Hello {name}'" in reported[0]
    assert "no translation of '{n} file'" in reported[1]
    assert "no translation of 'New'" in reported[2]


def test_extraction_keeps_translations_and_changes_nothing_when_run_again(
    tmp_path: Path,
) -> None:
    for locale in TRANSLATED:
        target = po_path(locale, tmp_path)
        target.parent.mkdir(parents=True)
        target.write_bytes(po_path(locale).read_bytes())
    update(locale_dir=tmp_path)
    for locale in TRANSLATED:
        assert po_path(locale, tmp_path).read_bytes() == po_path(locale).read_bytes(), (
            "the catalogues are not in step with the code: run python -m core.i18n_extract"
        )
