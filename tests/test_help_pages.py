"""The public help pages (web/routes_help.py): a public article opens without sign-in in the
reader's language, with its other languages linked; internal, archived and unknown ones are
a 404 page; whatever an author wrote is shown as text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.audit import CLI
from core.db import SessionFactory
from core.knowledge import archive_article, create_article
from core.models import KnowledgeArticle, Role
from tests.conftest import UserFactory
from tests.test_conversations_api import json_of

Client = TestClient[Any, Any]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def article(sessions: SessionFactory, **fields: Any) -> KnowledgeArticle:
    values: dict[str, Any] = {
        "slug": "returns",
        "language": "en",
        "title": "Returning an order",
        "body": "Send it back within 30 days.",
        "visibility": "public",
        **fields,
    }
    async with sessions() as session, session.begin():
        return await create_article(session, CLI, **values)


async def page(
    client: Client, path: str, status: int = 200, language: str | None = None
) -> tuple[str, Any]:
    headers = {"Accept": BROWSER}
    if language is not None:
        headers["Accept-Language"] = language
    response = await client.get(path, headers=headers)
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html"
    return text, response.headers


def heading(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html)
    assert found is not None, html
    return found.group(1)


def html_lang(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


@pytest.fixture
async def translated(sessions: SessionFactory) -> None:
    """ "returns" in English (written first), German, Russian and Brazilian Portuguese, and an
    internal French draft."""
    await article(sessions)
    await article(sessions, language="de", title="Eine Bestellung zurückgeben", body="30 Tage.")
    await article(sessions, language="ru", title="Возврат заказа", body="Тридцать дней.")
    await article(sessions, language="pt-BR", title="Devolver um pedido", body="Trinta dias.")
    await article(
        sessions, language="fr", title="Retourner une commande", body="…", visibility="internal"
    )


@pytest.mark.usefixtures("translated")
async def test_the_page_speaks_the_readers_language(client: Client) -> None:
    # ?lang= first, whatever the browser says.
    german, headers = await page(client, "/help/returns?lang=de", language="ru")
    assert (heading(german), html_lang(german)) == ("Eine Bestellung zurückgeben", "de")
    assert "Aktualisiert am" in german
    assert headers["Content-Language"] == "de"
    # Then Accept-Language, in its order of preference.
    russian, _ = await page(client, "/help/returns", language="fr-CA,ru;q=0.8,en;q=0.5")
    assert (heading(russian), html_lang(russian)) == ("Возврат заказа", "ru")
    assert "Обновлено" in russian
    # A language in another region: Portuguese readers get the Brazilian text; omnicrm has
    # no Portuguese of its own, so its words are English, marked as such.
    portuguese, _ = await page(client, "/help/returns", language="pt-PT,pt;q=0.9")
    assert (heading(portuguese), html_lang(portuguese)) == ("Devolver um pedido", "pt-BR")
    assert '<p class="note" lang="en">Updated on' in portuguese
    # Nothing the reader reads: the first translation written.
    fallback, _ = await page(client, "/help/returns?lang=ja", language="zh, ko;q=0.5")
    assert (heading(fallback), html_lang(fallback)) == ("Returning an order", "en")
    odd, _ = await page(client, "/help/returns?lang=%3Cb%3E", language="*")
    assert (heading(odd), html_lang(odd)) == ("Returning an order", "en")
    assert "<b>" not in odd
    # The internal French draft is never shown, nor offered.
    french, _ = await page(client, "/help/returns?lang=fr", language="fr")
    assert heading(french) == "Returning an order"
    assert "Retourner" not in french


@pytest.mark.usefixtures("translated")
async def test_the_other_languages_are_linked_in_their_own_words(client: Client) -> None:
    html, _ = await page(client, "/help/returns?lang=en")
    nav = re.search(r"<nav.*?</nav>", html, re.DOTALL)
    assert nav is not None
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(0))
    assert links == [
        ("?lang=de", "Deutsch"),
        ("?lang=ru", "русский"),
        ("?lang=pt-BR", "português (Brasil)"),
    ]
    assert "This article in other languages" in nav.group(0)


async def test_internal_archived_and_unknown_articles_are_not_found(
    client: Client, sessions: SessionFactory
) -> None:
    await article(sessions, slug="internal-pricing", title="Our margins", visibility="internal")
    old = await article(sessions, slug="old-policy", title="Old policy")
    async with sessions() as session, session.begin():
        await archive_article(session, CLI, old.id)
    for slug in ("internal-pricing", "old-policy", "no-such-article", "Bad%20Slug"):
        html, headers = await page(client, f"/help/{slug}", 404, language="de")
        assert heading(html) == "Dieser Artikel ist nicht verfügbar"
        assert html_lang(html) == "de"
        assert "Our margins" not in html
        assert "Old policy" not in html
        assert "Content-Security-Policy" in headers
    # A program (no HTML wanted) gets the API's JSON 404.
    answer = await json_of(await client.get("/help/internal-pricing"), 404)
    assert answer["error"]["code"] == "not_found"


async def test_what_an_author_wrote_is_shown_as_text(
    client: Client, sessions: SessionFactory
) -> None:
    await article(
        sessions,
        slug="tricky",
        title="<script>alert('title')</script> & more",
        body="First <b>paragraph</b>\nsecond line\n\n\n<img src=x onerror=alert(1)>",
    )
    html, headers = await page(client, "/help/tricky")
    assert "<script>" not in html
    assert "<img" not in html
    assert heading(html) == "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt; &amp; more"
    assert "<p>First &lt;b&gt;paragraph&lt;/b&gt;<br>\nsecond line</p>" in html
    assert "<p>&lt;img src=x onerror=alert(1)&gt;</p>" in html
    assert "&lt;script&gt;" in re.search(r"<title>(.*)</title>", html).group(1)  # type: ignore[union-attr]
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_the_link_an_operator_sends_opens_the_page_without_sign_in(
    client: Client, make_user: UserFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    created = await boss.post(
        "/api/v1/knowledge/articles",
        json={
            "slug": "opening-hours",
            "language": "de",
            "title": "Öffnungszeiten",
            "body": "Montag bis Freitag.",
            "visibility": "public",
        },
    )
    link = (await json_of(created, 201))["public_url"]
    origin = str(client.make_url("")).rstrip("/")
    assert link == f"{origin}/help/opening-hours?lang=de"
    # Opened by someone who is not signed in, whose browser prefers English.
    response = await client.session.get(link, headers={"Accept": BROWSER, "Accept-Language": "en"})
    html = await response.text()
    assert response.status == 200
    assert heading(html) == "Öffnungszeiten"


@pytest.mark.usefixtures("translated")
async def test_the_index_lists_public_articles_in_the_readers_language(
    client: Client, sessions: SessionFactory
) -> None:
    await article(sessions, slug="secret", title="Secret", visibility="internal")
    html, _ = await page(client, "/help", language="ru")
    assert heading(html) == "Помощь"
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert links == [("help/returns?lang=ru", "Возврат заказа")]
