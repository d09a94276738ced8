"""Finding things in the console, in a real browser: the search box as one types, the views
with their status tabs, filters and "load more", a saved view, and the contacts list.
Screenshots: test-artifacts/search.png, views.png, contacts.png."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import expect
from sqlalchemy import insert

from core.db import SessionFactory
from core.identity import Address
from core.models import Conversation, IdentityKind, Role, utcnow
from tests.browser.conftest import Browsing, assert_controls_labelled, open_as
from tests.conftest import UserFactory
from tests.test_conversations_api import queue_with
from tests.test_inbox_api import set_fields
from tests.test_search_api import message


async def test_an_operator_finds_conversations_contacts_and_views(
    browsing: Browsing, make_user: UserFactory, sessions: SessionFactory, artifacts: Path
) -> None:
    anna = await make_user(Role.OPERATOR, email="anna@example.com", name="Anna Novak")
    support = await queue_with(sessions, "Support", anna)
    parcel = await message(
        sessions,
        "ru",
        Address(IdentityKind.EMAIL, "ivan@example.ru"),
        "Здравствуйте! Моя посылка не пришла, заказ 48213.",
        name="Иван Петров",
        queue_id=support,
    )
    snoozed = await message(
        sessions,
        "later",
        Address(IdentityKind.EMAIL, "kim@example.com"),
        "Call me back next week",
        name="Kim Lee",
        queue_id=support,
    )
    await set_fields(
        sessions,
        snoozed,
        status="snoozed",
        assignee_id=anna.operator.id,
        snoozed_until=utcnow() + timedelta(days=3),
    )
    async with sessions() as session, session.begin():
        template = await session.get(Conversation, parcel)
        assert template is not None
        await session.execute(
            insert(Conversation),
            [
                {
                    "contact_id": template.contact_id,
                    "channel": "email",
                    "status": "open",
                    "queue_id": support,
                    "subject": f"bulk {n}",
                    "updated_at": utcnow() - timedelta(hours=1, minutes=n),
                }
                for n in range(60)
            ],
        )

    page = await open_as(browsing, anna)

    # Results as one types; the words found are marked; Enter opens the first.
    await page.keyboard.press("/")
    search = page.get_by_role("combobox", name="Search contacts and messages")
    await expect(search).to_be_focused()
    await search.press_sequentially("посыл", delay=30)
    results = page.locator("#search-results")
    await expect(results.locator('[data-kind="conversation"]')).to_contain_text("Иван Петров")
    await expect(results.locator("mark").first).to_have_text("посыл")
    await expect(results.locator('[data-kind="contact"]')).to_have_count(0)
    await page.screenshot(path=artifacts / "search.png")
    await search.press("Enter")
    view = page.locator(f'.conversation-view[data-conversation-id="{parcel}"]')
    await expect(view.locator(".timeline")).to_contain_text("Моя посылка не пришла")

    # A contact by email: the contact, then its conversation.
    await search.fill("ivan@example.ru")
    await expect(results.locator('[data-kind="contact"]')).to_contain_text("Иван Петров")
    await search.fill("")

    # Views: the snoozed conversation has its tab; "load more" reaches the end.
    await page.get_by_role("tab", name="Views").click()
    await page.locator('.status-tab[data-status="snoozed"]').click()
    listed = page.locator("#view-list .inbox-item")
    await expect(listed).to_have_count(1)
    await expect(listed).to_contain_text("Kim Lee")
    await page.locator('.status-tab[data-status="open"]').click()
    await expect(listed).to_have_count(50)
    await expect(page.locator("#view-list .view-count")).to_have_text("61 conversations")
    await page.locator("#view-list .load-more").click()
    await expect(listed).to_have_count(61)
    await expect(page.locator("#view-list .load-more")).to_have_count(0)

    # Filters, and the filtered view saved under a name.
    await page.get_by_label("Assignee").select_option("me")
    await page.locator('.status-tab[data-status="all"]').click()
    await expect(listed).to_have_count(1)
    await page.get_by_role("button", name="Save view").click()
    await page.get_by_label("View name").fill("My snoozed")
    await page.locator("#save-view-dialog").get_by_role("button", name="Save").click()
    await expect(page.locator("#saved-views option:checked")).to_have_text("My snoozed")
    await page.screenshot(path=artifacts / "views.png")
    await page.get_by_label("Assignee").select_option("")
    await expect(listed).to_have_count(50)
    await page.get_by_label("Saved views").select_option(label="My snoozed")
    await expect(listed).to_have_count(1)
    await expect(page.get_by_label("Assignee")).to_have_value("me")

    # The contacts list, searched.
    await page.get_by_role("tab", name="Contacts").click()
    await page.get_by_label("Name, email or phone").fill("петр")
    contacts = page.locator("#contact-list .contact-item")
    await expect(contacts).to_have_count(1)
    await expect(contacts).to_contain_text("ivan@example.ru")
    await page.screenshot(path=artifacts / "contacts.png")
    await assert_controls_labelled(page)
    await contacts.click()
    await expect(page.locator(".conversation-view")).to_be_visible()
