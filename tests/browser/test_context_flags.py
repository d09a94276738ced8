"""The customer's history in the console, in a real browser (issue 15): Max keeps writing about
his order 10330, by email and then on WhatsApp. Anna opens his email conversation and sees, in
the strip under its header, that this is his third message about order 10330 this week, that
his WhatsApp conversation is still unresolved and that he wrote there last; the reply goes out
on WhatsApp by default. She follows the link and lands in the WhatsApp conversation.

Times are the suite's clock's (`core.clock`), never today's date.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from playwright.async_api import expect

from core.clock import utcnow
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind
from tests.browser.conftest import Browsing, assert_controls_labelled, sign_in, support_team
from tests.conftest import UserFactory
from web.keys import INGEST_POLICY

MAX = (
    Address(IdentityKind.EMAIL, "max.mueller@example.de"),
    Address(IdentityKind.WHATSAPP, "+4915112345678"),
)


async def max_writes(
    app: web.Application,
    sessions: SessionFactory,
    queue_id: int,
    external_id: str,
    channel: str,
    text: str,
    ago: timedelta,
) -> int:
    async with sessions() as session, session.begin():
        stored = await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=external_id,
                addresses=MAX,
                display_name="Max Müller",
                text=text,
                occurred_at=utcnow() - ago,
                queue_id=queue_id,
            ),
            app[INGEST_POLICY],
        )
    return stored.conversation_id


async def test_an_operator_sees_a_repeat_customers_history_and_follows_it_to_whatsapp(
    browsing: Browsing,
    make_user: UserFactory,
    app: web.Application,
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    team = await support_team(make_user)
    queue = team.queue_id
    email = await max_writes(
        app,
        sessions,
        queue,
        "<1@max>",
        "email",
        "Hello, where is my order 10330? It should be here by now.",
        timedelta(days=3),
    )
    await max_writes(
        app,
        sessions,
        queue,
        "<2@max>",
        "email",
        "Order 10330 is still not here, please check.",
        timedelta(days=1),
    )
    whatsapp = await max_writes(
        app,
        sessions,
        queue,
        "wa-1",
        "whatsapp",
        "Hallo, ich warte immer noch auf Bestellung 10330!",
        timedelta(hours=1),
    )
    assert email != whatsapp
    assigned = await team.admin.post(
        f"/api/v1/conversations/{email}/assign", json={"assignee_id": team.operator.operator.id}
    )
    assert assigned.status == 200, await assigned.text()

    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.locator(f'[data-section="mine"] .inbox-item[data-conversation-id="{email}"]').click()
    view = page.locator(f'.conversation-view[data-conversation-id="{email}"]')
    flags = view.get_by_role("list", name="About this customer")
    await expect(flags.locator('[data-flag="repeat"]')).to_have_text(
        "3 messages about order 10330 this week"
    )
    unresolved = flags.locator('[data-flag="unresolved"]')
    await expect(unresolved).to_have_count(1)
    await expect(unresolved).to_contain_text(f"Unresolved on WhatsApp (#{whatsapp})")
    await expect(flags.locator('[data-flag="last-channel"]')).to_have_text(
        f"The customer last wrote on WhatsApp (#{whatsapp})"
    )
    await expect(flags.locator('[data-flag="language"]')).to_have_text("Writes in German")
    # He wrote on WhatsApp last: the answer goes there unless Anna picks another channel.
    await expect(view.get_by_label("Send via")).to_have_value("whatsapp")
    await assert_controls_labelled(page)
    await page.screenshot(path=artifacts / "console-context-flags.png")

    await unresolved.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(rf"#c={whatsapp}$"))
    there = page.locator(f'.conversation-view[data-conversation-id="{whatsapp}"]')
    await expect(there.locator(".timeline")).to_contain_text("warte immer noch")
    # From WhatsApp, the email conversation is the unresolved one elsewhere.
    back = there.get_by_role("list", name="About this customer")
    await expect(back.locator('[data-flag="unresolved"]')).to_contain_text(
        f"Unresolved on Email (#{email})"
    )
    await expect(back.locator('[data-flag="last-channel"]')).to_have_count(0)
    await expect(there.get_by_label("Send via")).to_have_value("whatsapp")
