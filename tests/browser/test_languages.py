"""Languages in a real browser (Debian's Chromium): an operator whose preferences say Russian
gets the console (its preferences and dates, the inbox, a conversation's actions, status and
composer), the monitor and the admin pages in Russian; a German visitor posting a web form
with a mistake gets the form back in German, with what they typed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from tests.browser.conftest import LAPTOP, Browsing, assert_controls_labelled, open_as
from tests.conftest import UserFactory

# "Now: 3 Dec 2026, 21:30" in Russian: a Russian month, then the abbreviation of "year".
RUSSIAN_DATE = re.compile(r"Сейчас: \d{1,2} [\u0430-\u044f]+\.? \d{4} \u0433\., \d{2}:\d{2}")


async def test_the_console_and_monitor_in_russian_and_a_form_error_in_german(
    browser: Browser,
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    artifacts: Path,
) -> None:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    response = await admin.post("/api/v1/queues", json={"name": "Support"})
    assert response.status == 201, await response.text()
    queue_id = (await response.json())["id"]
    response = await admin.post(
        "/api/v1/forms", json={"slug": "kontakt", "title": "Kontakt", "queue_id": queue_id}
    )
    assert response.status == 201, await response.text()
    posted = await client.post(
        "/forms/kontakt", json={"name": "Jonas Weber", "email": "jonas@example.com", "message": "?"}
    )
    assert posted.status == 201
    tom = await make_user("supervisor", email="tom@example.com", name="Tom Becker")
    response = await tom.patch(
        "/api/v1/auth/me/preferences", json={"locale": "ru", "time_zone": "Europe/Moscow"}
    )
    assert response.status == 200, await response.text()

    # The console: the preferences control, its dialog and its date in Russian.
    page = await open_as(browsing, tom, "/console/")
    assert await page.locator("html").get_attribute("lang") == "ru"
    button = page.locator("#preferences-button")
    await expect(button).to_have_text("Настройки")
    await button.click()
    dialog = page.get_by_role("dialog", name="Настройки")
    await expect(dialog).to_be_visible()
    language = dialog.get_by_label("Язык")
    assert await language.input_value() == "ru"
    await expect(language.locator("option:checked")).to_have_text("Русский")
    await expect(dialog.locator("#preferences-now")).to_have_text(RUSSIAN_DATE)
    await assert_controls_labelled(page)
    await page.screenshot(path=artifacts / "console-preferences-ru.png")
    await dialog.get_by_label("Часовой пояс").select_option("Europe/Berlin")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(page.locator(".toast")).to_contain_text("Настройки сохранены")
    saved = await (await tom.get("/api/v1/auth/me/preferences")).json()
    assert saved["time_zone"] == "Europe/Berlin"

    # The monitor: headings, tables and live state in Russian.
    await page.goto("/monitor/")
    await page.locator("body[data-ready=true]").wait_for()
    await expect(page.locator("#queues-title")).to_have_text("Очереди")
    await expect(page.locator("#queues thead")).to_contain_text("Ждут сейчас")
    await expect(page.locator("#updated")).to_contain_text("обновлено в")
    await expect(page.locator("#live-state")).to_have_text("в эфире")
    waiting = page.locator("#waiting tbody tr", has_text="Jonas Weber")
    await expect(waiting.get_by_role("button", name=re.compile("^Назначить"))).to_be_visible()
    await assert_controls_labelled(page)
    await page.screenshot(path=artifacts / "monitor-ru.png", full_page=True)

    # The console itself: the inbox, a conversation's actions, its status and the composer.
    listed = await (await tom.get("/api/v1/conversations?limit=1")).json()
    conversation_id = listed["items"][0]["id"]
    await page.goto(f"/console/#c={conversation_id}")
    await page.locator("body[data-ready=true]").wait_for()
    await expect(page.get_by_role("tab", name="Входящие")).to_be_visible()
    await expect(page.get_by_role("tab", name="Представления")).to_be_visible()
    sections = page.locator("#inbox-sections h2")
    await expect(sections.nth(0)).to_contain_text("Назначенные мне")
    await expect(sections.nth(2)).to_contain_text("Не назначенные в моих очередях")  # noqa: RUF001 (Russian)
    header = page.locator(".conversation-header")
    await expect(header.locator(".pill[data-status=open]")).to_have_text("открыт")
    await expect(header.locator(".assignee")).to_have_text("не назначен")
    await expect(header.locator(".meta")).to_contain_text("Веб-форма")  # noqa: RUF001 (Russian)
    actions = page.get_by_role("group", name="Действия с разговором")  # noqa: RUF001 (Russian)
    await expect(actions.get_by_role("button", name="Взять")).to_be_visible()
    await expect(actions.get_by_role("button", name="Решить")).to_be_visible()
    await expect(actions.locator("summary", has_text="Передать…")).to_be_visible()
    composer = page.get_by_role("form", name="Ответ или заметка")
    await expect(composer.get_by_role("button", name="Отправить ответ")).to_be_visible()
    await expect(composer.get_by_label("Внутренняя заметка")).to_be_visible()
    textarea = composer.get_by_role("textbox", name="Ответ клиенту")
    await expect(textarea).to_have_attribute("placeholder", re.compile("^Напишите ответ"))
    await composer.get_by_label("Внутренняя заметка").check()
    await expect(composer.get_by_role("button", name="Добавить заметку")).to_be_visible()
    await assert_controls_labelled(page)
    await page.screenshot(path=artifacts / "console-conversation-ru.png")
    await actions.get_by_role("button", name="Решить").click()
    await expect(page.locator(".toast", has_text="Разговор решён")).to_be_visible()
    await expect(header.locator(".pill[data-status=resolved]")).to_have_text("решён")
    await expect(actions.get_by_role("button", name="Открыть снова")).to_be_visible()

    # The admin pages: navigation and the section heading in Russian.
    await page.goto("/admin/#queues")
    await page.locator("body[data-ready=true]").wait_for()
    await expect(page.locator("main h1")).to_have_text("Очереди")
    await expect(page.get_by_role("link", name="Операторы")).to_be_visible()
    await assert_controls_labelled(page)

    # A page the role cannot open says so in the browser's language.
    anna = await make_user("operator", email="anna@example.com", name="Anna Novak")
    response = await anna.get("/admin/", headers={"Accept-Language": "ru"})
    assert response.status == 403
    assert "Только для администраторов" in await response.text()

    # A German visitor's browser posts the form with an address the server cannot use.
    german = await browser.new_context(base_url=browsing.base_url, viewport=LAPTOP, locale="de-DE")
    try:
        form = await german.new_page()
        await form.goto("/forms/kontakt")
        await form.get_by_label("Ihr Name").fill("<b>Jan</b> Müller")
        await form.get_by_label("E-Mail").fill("jan@localhost")
        await form.get_by_label("Nachricht").fill("Wo ist meine Bestellung 4711?")
        await form.get_by_role("button", name="Senden").click()
        await expect(form.locator("#e-email")).to_have_text("Das ist keine gültige E-Mail-Adresse.")
        await expect(form.get_by_label("Ihr Name")).to_have_value("<b>Jan</b> Müller")
        await expect(form.get_by_label("Nachricht")).to_have_value("Wo ist meine Bestellung 4711?")
        await expect(form.get_by_label("E-Mail")).to_have_attribute("aria-invalid", "true")
        assert await form.locator("html").get_attribute("lang") == "de"
        await form.screenshot(path=artifacts / "form-error-de.png", full_page=True)
        await form.get_by_label("E-Mail").fill("jan@example.com")
        await form.get_by_role("button", name="Senden").click()
        await expect(form.get_by_role("heading", name="Vielen Dank")).to_be_visible()
        # Signing in, too, speaks the browser's language.
        await form.goto("/login")
        await expect(form.get_by_role("heading", name="Bei omnicrm anmelden")).to_be_visible()
        await expect(form.get_by_label("Passwort")).to_be_visible()
        await expect(form.get_by_role("button", name="Anmelden")).to_be_visible()
    finally:
        await german.close()
