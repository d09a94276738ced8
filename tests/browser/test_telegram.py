"""A Telegram message in a real browser: the bot's long poll (getUpdates against the Bot API
stand-in, tests/telegram_standin.py) brings it into the console live, the operator answers and
the outbox worker sends the answer with sendMessage to the customer's chat; the customer then
edits their message and the console shows it as edited, with the earlier text under it.
Screenshot: test-artifacts/telegram-conversation.png (docs/img/ for docs/channels/telegram.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.registry import default_channels
from core.models import utcnow
from core.settings import Settings
from tests import telegram_standin as tg
from tests.browser.conftest import Browsing, sign_in, support_team
from tests.conftest import UserFactory
from tests.telegram_helpers import fast_channel
from tests.telegram_standin import TOKEN, TelegramStandIn
from web.app import create_app

OLGA = 5_550_042  # the customer's Telegram user id, and her private chat's


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> web.Application:
    """The app as `omnicrm serve` runs it (routing, outbox worker, pollers), with Telegram's
    waits shortened: a 1 s long poll and quick backoff."""
    channels = [item for item in default_channels() if item.name != "telegram"]
    return create_app(settings, background_workers=True, channels=[*channels, fast_channel()])


async def unfold(page: Page, details: Locator) -> None:
    """Open a <details>. A live reload of the conversation re-renders it closed, and one may
    still be on its way (events are coalesced), so: open it until it stays open."""
    for _ in range(20):
        if await details.get_attribute("open") is None:
            await details.locator("summary").click()
        await page.wait_for_timeout(400)
        if await details.get_attribute("open") is not None:
            return
    raise AssertionError("the <details> did not stay open")


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    async with tg.running() as telegram:
        yield telegram


async def test_a_telegram_message_arrives_live_is_answered_and_its_edit_shows(
    browsing: Browsing,
    make_user: UserFactory,
    standin: TelegramStandIn,
    artifacts: Path,
) -> None:
    team = await support_team(make_user)
    admin, queue_id = team.admin, team.queue_id
    # The bot, pointed at the stand-in: getMe checks the token, then its poller long-polls.
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={
            "channel": "telegram",
            "name": "support",
            "queue_id": queue_id,
            "settings": {"token": TOKEN, "mode": "polling", "api_base_url": standin.url},
        },
    )
    assert response.status == 201, await response.text()
    await standin.called("getUpdates")

    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.evaluate("window.sameDocument = true")  # a reload would lose it
    await page.get_by_label("Presence").select_option("available")
    await expect(page.locator("#presence")).to_have_value("available")

    now = int(utcnow().timestamp())
    who: tg.From = {
        "first_name": "Olga",
        "last_name": "Smirnova",
        "username": "olga_s",
        "message_id": 7,
        "date": now,
    }
    standin.push(TOKEN, tg.text_message(OLGA, "Hello! My order 4711 has not arrived", **who))

    # Routed to the operator, live: it shows in their inbox; they open it.
    mine = page.locator('[data-section="mine"] .inbox-item')
    await expect(mine).to_contain_text("Olga Smirnova")
    await mine.click()
    view = page.locator(".conversation-view")
    await expect(view.locator(".timeline")).to_contain_text("Hello! My order 4711 has not arrived")
    await expect(view.locator('.item[data-channel="telegram"]').first).to_be_visible()
    await expect(page.get_by_label("Send via")).to_have_value("telegram")

    await page.get_by_label("Reply to the customer").fill("Sorry! It ships today, <b>promised</b>.")
    await page.keyboard.press("Control+Enter")
    answer = view.locator(".item-out", has_text="It ships today")
    await expect(answer.locator(".delivery")).to_have_text("sent")
    [sent] = standin.sent
    assert sent.method == "sendMessage"
    assert sent.chat_id == OLGA
    # Sent as HTML with the text escaped: Telegram shows exactly what the operator wrote.
    assert sent.result["text"] == "Sorry! It ships today, <b>promised</b>."
    assert sent.result["chat"]["id"] == OLGA

    # The customer corrects her message: the console shows the new text, marked as edited,
    # with what it said before, without a reload.
    standin.push(
        TOKEN,
        tg.edited(OLGA, "Hello! My order 4712 has not arrived", edit_date=now + 30, **who),
    )
    original = view.locator(".item-in", has_text="My order 4712")
    await expect(original).to_be_visible()
    edits = original.locator("details.item-edits")
    await expect(edits.locator("summary")).to_have_text("edited")
    await expect(edits.locator(".item-edit-text")).to_have_text(
        "Hello! My order 4711 has not arrived"
    )
    # For the screenshot: no toasts over the customer card, and the earlier text unfolded.
    await expect(page.locator(".toast")).to_have_count(0)
    await unfold(page, edits)
    await expect(edits.locator(".item-edit-text")).to_be_visible()
    await expect(original.locator(".item-body")).to_have_text(
        "Hello! My order 4712 has not arrived"
    )
    await expect(view.locator(".item-in")).to_have_count(1)
    assert await page.evaluate("window.sameDocument") is True
    await page.screenshot(path=artifacts / "telegram-conversation.png")
