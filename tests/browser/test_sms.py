"""An SMS in a real browser: it arrives live, the operator answers, and the console shows the
answer's delivery move from sent to delivered as Twilio reports it; a failed answer shows why
and can be sent again."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from tests.browser.conftest import Browsing, sign_in
from tests.conftest import UserFactory
from tests.twilio_helpers import OUR_NUMBER, PUBLIC, add_account, post_signed, running_standin
from tests.twilio_standin import TwilioStandIn, error, inbound, status


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandIn]:
    async with running_standin() as twilio:
        yield twilio


async def test_an_sms_arrives_live_and_the_answer_shows_sent_then_delivered(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    standin: TwilioStandIn,
    artifacts: Path,
) -> None:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    operator = await make_user("operator", email="anna@example.com", name="Anna Novak")
    response = await admin.post("/api/v1/queues", json={"name": "SMS"})
    queue_id = (await response.json())["id"]
    await admin.put(
        f"/api/v1/queues/{queue_id}/members", json={"operator_ids": [operator.operator.id]}
    )
    await admin.patch(
        f"/api/v1/operators/{operator.operator.id}", json={"capacity": {"messaging": 5}}
    )
    # Twilio calls the public address; the console is used at the test server's.
    await add_account(make_user, standin, queue_id=queue_id, public_url=PUBLIC)

    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.get_by_label("Presence").select_option("available")
    await expect(page.locator("#presence")).to_have_value("available")

    sms = await post_signed(client, inbound("+14155550123", "Is my parcel on its way?"))
    assert sms.status == 200
    # Routed to the operator, live: it shows in their inbox.
    mine = page.locator('[data-section="mine"] .inbox-item')
    await expect(mine).to_contain_text("Is my parcel on its way?")
    await mine.click()
    view = page.locator(".conversation-view")
    await expect(view.locator(".timeline")).to_contain_text("Is my parcel on its way?")
    await expect(page.get_by_label("Send via")).to_have_value("sms")

    await page.get_by_label("Reply to the customer").fill("Yes, it arrives tomorrow.")
    await page.keyboard.press("Control+Enter")
    answer = view.locator(".item-out", has_text="Yes, it arrives tomorrow.")
    badge = answer.locator(".delivery")
    # The outbox worker hands it to Twilio: "sent", live.
    await expect(badge).to_have_text("sent")
    [message] = standin.messages
    assert message["From"] == OUR_NUMBER
    outbox_id = await badge.get_attribute("data-outbox-id")
    query = f"?outbox={outbox_id}&attempt=1"
    callback = await post_signed(client, status(message, "delivered"), hook="status", query=query)
    assert callback.status == 200
    await expect(badge).to_have_text("delivered")  # Twilio's receipt, live
    await page.screenshot(path=artifacts / "console-sms.png")

    # A second answer fails at Twilio: the console says why and offers to send it again.
    standin.script(error(21211, "Invalid 'To' Phone Number: +14155550123"))
    await page.get_by_label("Reply to the customer").fill("One more thing.")
    await page.keyboard.press("Control+Enter")
    failed = view.locator(".item-out", has_text="One more thing.")
    await expect(failed.locator(".delivery")).to_have_text("failed")
    await expect(failed.locator(".delivery-error")).to_contain_text(
        re.compile(r"Twilio 21211: Invalid 'To' Phone Number")
    )
    await failed.get_by_role("button", name="Retry").click()
    await expect(failed.locator(".delivery")).to_have_text("sent")
    assert len(standin.messages) == 2
