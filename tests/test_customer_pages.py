"""Customers never see JSON: web forms and error pages in the visitor's language, the
catalogues for the browser, while the API and other clients keep JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.db import SessionFactory
from core.forms import create_form
from core.models import Contact, Interaction
from core.settings import Settings

Client = TestClient[Any, Any]
# What a browser sends when it navigates or posts a form.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
MAX_BODY = 4096


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        log_json=False,
        attachments_dir=str(tmp_path / "attachments"),
        max_body_bytes=MAX_BODY,
        form_rate_limit_per_minute=5,
    )


async def make_form(sessions: SessionFactory, **settings: Any) -> None:
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact", title="Kontakt", **settings)


async def count(sessions: SessionFactory, model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def field_error(page: str, name: str) -> str:
    """The error text shown beside the input `name`."""
    match = re.search(rf'<span class="error" id="e-{name}">([^<]*)</span>', page)
    assert match, page
    return match.group(1)


async def test_a_browser_post_with_errors_gets_the_form_back_in_its_language(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, required_fields=["name", "email", "message"])
    typed = {
        "name": '<b>Dora</b> "the" explorer',
        "email": "not-an-email",
        "message": "</textarea><script>alert(1)</script>",
        "submission_id": "render-1",
        "utm_source": "newsletter",
    }
    response = await client.post(
        "/forms/contact", data=typed, headers={"Accept": BROWSER, "Accept-Language": "de-DE,de"}
    )
    assert response.status == 400
    assert response.content_type == "text/html"
    assert response.headers["Content-Language"] == "de"
    page = await response.text()
    assert '<html lang="de">' in page
    assert field_error(page, "email") == "Das ist keine gültige E-Mail-Adresse."
    assert 'id="f-email" name="email"' in page
    assert 'aria-invalid="true"' in page
    # What they typed is kept, escaped: the page stays the page.
    assert 'value="&lt;b&gt;Dora&lt;/b&gt; &quot;the&quot; explorer"' in page
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in page
    assert "<script>" not in page
    assert 'name="submission_id" value="render-1"' in page
    assert 'name="utm_source" value="newsletter"' in page
    assert "Bitte korrigieren Sie die markierten Felder" in page
    assert "Content-Security-Policy" in response.headers
    assert await count(sessions, Interaction) == 0


async def test_required_fields_and_the_missing_address_are_named_in_russian(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, required_fields=["name", "message"])
    response = await client.post(
        "/forms/contact?lang=ru", data={"name": "Дора"}, headers={"Accept": BROWSER}
    )
    assert response.status == 400
    page = await response.text()
    assert field_error(page, "message") == "Пожалуйста, заполните это поле."
    assert field_error(page, "email").startswith("Укажите адрес электронной почты")
    assert 'value="Дора"' in page


async def test_api_clients_keep_json_errors(client: Client, sessions: SessionFactory) -> None:
    await make_form(sessions)
    posts: list[dict[str, Any]] = [
        {"json": {"email": "x"}},
        {"data": {"email": "x"}},  # urlencoded, but not asking for HTML
        {"json": {"email": "x"}, "headers": {"Accept": BROWSER}},  # JSON body: a script
    ]
    for kwargs in posts:
        response = await client.post("/forms/contact", **kwargs)
        assert response.status == 400, kwargs
        body = await response.json()
        assert body["error"]["fields"]["email"] == "not a valid email address"


async def test_the_form_and_thanks_pages_follow_the_chosen_language(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, required_fields=["email", "message"])
    page = await (await client.get("/forms/contact?lang=ru")).text()
    assert '<html lang="ru">' in page
    assert ">Сообщение" in page
    assert ">Отправить</button>" in page
    assert '<input type="hidden" name="lang" value="ru">' in page
    posted = await client.post(
        "/forms/contact",
        data={"email": "dora@example.com", "message": "Привет", "lang": "ru"},
        headers={"Accept": BROWSER},
        allow_redirects=False,
    )
    assert posted.status == 303
    assert posted.headers["Location"] == "/forms/contact/thanks?lang=ru"
    thanks = await (await client.get(posted.headers["Location"])).text()
    assert "<h1>Спасибо</h1>" in thanks
    async with sessions() as session:
        assert await session.scalar(select(Contact.language)) == "ru"
    german = await client.get("/forms/contact", headers={"Accept-Language": "de-AT, en;q=0.5"})
    assert ">Nachricht" in await german.text()
    assert german.headers["Vary"] == "Accept-Language"
    english = await client.get("/forms/contact/thanks", headers={"Accept-Language": "fr"})
    assert "<h1>Thank you</h1>" in await english.text()


async def test_the_contact_keeps_the_browsers_language(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    await client.post(
        "/forms/contact",
        json={"email": "jan@example.com", "message": "Hej"},
        headers={"Accept-Language": "sv-SE, de;q=0.5"},
    )
    async with sessions() as session:
        assert await session.scalar(select(Contact.language)) == "sv-SE"


@pytest.mark.parametrize("path", ["/no/such/page", "/forms/nope", "/forms/nope/thanks"])
async def test_a_browser_gets_a_404_page_in_its_language(client: Client, path: str) -> None:
    response = await client.get(path, headers={"Accept": BROWSER, "Accept-Language": "ru"})
    assert response.status == 404
    assert response.content_type == "text/html"
    page = await response.text()
    assert "<h1>Страница не найдена</h1>" in page
    assert "Ошибка 404" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    as_script = await client.get(path)
    assert as_script.status == 404
    assert (await as_script.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing", "/api/v1/contacts/1", "/hooks/x/y/z", "/i18n/xx.json"]
)
async def test_machine_paths_answer_json_even_to_a_browser(client: Client, path: str) -> None:
    response = await client.get(path, headers={"Accept": BROWSER})
    assert response.content_type == "application/json"
    assert "error" in await response.json()


async def test_a_browser_sending_too_much_gets_a_413_page(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    response = await client.post(
        "/forms/contact",
        data={"email": "a@example.com", "message": "x" * (MAX_BODY + 10)},
        headers={"Accept": BROWSER, "Accept-Language": "de"},
    )
    assert response.status == 413
    assert "<h1>Zu viel auf einmal</h1>" in await response.text()
    api = await client.post("/forms/contact", json={"message": "x" * (MAX_BODY + 10)})
    assert api.status == 413
    assert (await api.json())["error"]["code"] == "too_large"


async def test_a_browser_posting_too_often_gets_a_429_page_with_retry_after(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    spam = {"email": "bot@example.com", "message": "again", "website": "x"}
    for _ in range(5):
        assert (await client.post("/forms/contact", json=spam)).status == 201
    response = await client.post(
        "/forms/contact", data=spam, headers={"Accept": BROWSER, "Accept-Language": "ru"}
    )
    assert response.status == 429
    seconds = int(response.headers["Retry-After"])
    page = await response.text()
    assert "<h1>Слишком много запросов</h1>" in page
    assert f"Подождите {seconds} секунд" in page
    api = await client.post("/forms/contact", json=spam)
    assert api.status == 429
    assert (await api.json())["error"]["code"] == "rate_limited"


async def test_the_catalogue_endpoint(client: Client) -> None:
    response = await client.get("/i18n/ru.json")
    assert response.status == 200
    document = await response.json()
    assert document["locale"] == "ru"
    assert document["plural_index"] == {"one": 0, "few": 1, "many": 2, "other": 2}
    assert document["messages"]["Queues"] == "Очереди"
    assert response.headers["Cache-Control"] == "no-cache"
    again = await client.get("/i18n/ru.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    english = await (await client.get("/i18n/en.json")).json()
    assert english["messages"] == {}
    assert english["plural_index"] == {"one": 0, "other": 1}
    missing = await client.get("/i18n/xx.json")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


async def test_the_start_and_sign_in_pages_speak_the_browsers_language(client: Client) -> None:
    start = await client.get("/", headers={"Accept-Language": "de"})
    assert "Das Contact-Center-CRM läuft." in await start.text()
    login = await client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert '<html lang="ru">' in await login.text()
    default = await client.get("/login", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in await default.text()


async def test_a_browser_post_that_cannot_be_used_gets_the_form_with_a_general_error(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    upload = aiohttp.FormData()
    upload.add_field("email", "a@example.com")
    upload.add_field("message", "see attached")
    upload.add_field("cv", b"%PDF", filename="cv.pdf", content_type="application/pdf")
    response = await client.post(
        "/forms/contact", data=upload, headers={"Accept": BROWSER, "Accept-Language": "ru"}
    )
    assert response.status == 400
    page = await response.text()
    assert "Форму не удалось отправить" in page
    assert 'value="a@example.com"' in page
    unreadable = await client.post(
        "/forms/contact",
        data=b"--x\r\nbroken",
        headers={"Accept": BROWSER, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert unreadable.status == 400
    assert "The form could not be sent" in await unreadable.text()
    assert await count(sessions, Interaction) == 0
