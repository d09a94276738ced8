"""The admin pages in Debian's Chromium: each section's main path, a validation error from the
API shown beside its field, the supervisor's reduced view, and a screenshot of each section
(test-artifacts/admin-*.png). One browser for the module: one test walks every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Locator, Page, expect
from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, ChannelAccount, Operator, QueueMember
from core.operators import DEFAULT_CAPACITY
from tests.browser.conftest import Browsing, assert_controls_labelled, open_as
from tests.conftest import UserFactory


async def section(page: Page, name: str) -> Locator:
    """Open a section by its link in the navigation and wait until it has loaded."""
    await (
        page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()
    )
    await page.locator("body[data-ready=true]").wait_for()
    return page.locator("#admin-main")


async def screenshot(page: Page, artifacts: Path, name: str) -> None:
    """The whole page without passing notices."""
    await page.evaluate("document.getElementById('toasts')?.remove()")
    await page.screenshot(path=str(artifacts / f"admin-{name}.png"), full_page=True)


def editor(page: Page) -> Locator:
    return page.locator("section.editor")


def error_beside(box: Locator) -> Locator:
    return box.locator(".error-text")


async def test_an_admin_runs_the_installation_from_the_admin_pages(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    await make_user("operator", email="anna@example.com", name="Anna Novak")
    await admin.post("/api/v1/queues", json={"name": "Support"})
    await admin.post("/api/v1/queues", json={"name": "Sales"})

    # The console links here for admins.
    console = await open_as(browsing, admin, "/console/")
    await expect(console.get_by_role("link", name="Admin")).to_be_visible()
    await console.close()

    page = await open_as(browsing, admin, "/admin/")
    page.on("dialog", lambda dialog: dialog.accept())

    # --- Operators: add one with a queue; the default capacity applies.
    main = page.locator("#admin-main")
    await expect(main.get_by_role("heading", name="Operators")).to_be_visible()
    await main.get_by_role("button", name="Add operator").click()
    form = editor(page)
    await form.get_by_label("Name", exact=True).fill("Tom Becker")
    await form.get_by_label("Email", exact=True).fill("tom@example.com")
    await form.get_by_label("Languages").fill("de=100, en=80")
    await form.get_by_label("Support").check()
    await form.get_by_role("button", name="Add operator").click()
    tom_row = main.locator("tr", has_text="Tom Becker")
    await expect(tom_row).to_contain_text("Support")
    await expect(tom_row).to_contain_text("messaging=5")
    async with sessions() as session:
        tom = await session.scalar(select(Operator).where(Operator.email == "tom@example.com"))
        assert tom is not None
        assert tom.capacity == dict(DEFAULT_CAPACITY)
        assert tom.languages == {"de": 100, "en": 80}
        assert await session.scalar(
            select(QueueMember.queue_id).where(QueueMember.operator_id == tom.id)
        )

    # A capacity the API refuses: its message appears beside that field, nothing is saved.
    await tom_row.get_by_role("button", name="Edit").click()
    form = editor(page)
    voice = form.locator("[data-field='capacity.voice']")
    await voice.get_by_role("spinbutton").fill("5000")
    await form.get_by_role("button", name="Save").click()
    await expect(error_beside(voice)).to_contain_text("less than or equal to 1000")
    await expect(voice.get_by_role("spinbutton")).to_have_attribute("aria-invalid", "true")
    await voice.get_by_role("spinbutton").fill("2")
    await form.get_by_role("button", name="Save").click()
    await expect(tom_row).to_contain_text("voice=2")
    await assert_controls_labelled(page)
    await screenshot(page, artifacts, "operators")

    # Reset a password; deactivate.
    await tom_row.get_by_role("button", name="Reset password").click()
    await editor(page).get_by_label("New password").fill("a new long password")
    await editor(page).get_by_role("button", name="Set password").click()
    await expect(editor(page)).to_have_count(0)
    await tom_row.get_by_role("button", name="Deactivate").click()
    await expect(tom_row).to_contain_text("Deactivated")

    # --- Queues: the routing configuration's per-field errors beside the fields.
    main = await section(page, "Queues")
    support_row = main.locator("tr", has_text="Support").first
    await support_row.get_by_role("button", name="Edit").click()
    form = editor(page)
    sla = form.locator("[data-field='config.sla.first_response_minutes']")
    await sla.get_by_role("spinbutton").fill("0")
    await form.get_by_label("Strategies, in order").fill("least_busy, sticky")
    await form.get_by_role("button", name="Save").click()
    await expect(error_beside(sla)).to_contain_text("greater than 0")
    strategies = form.locator("[data-field='config.strategies']")
    await expect(error_beside(strategies)).not_to_be_empty()
    await screenshot(page, artifacts, "queues")
    await form.get_by_label("Strategies, in order").fill("sticky, least_busy")
    await sla.get_by_role("spinbutton").fill("60")
    await form.get_by_label("Anna Novak").check()
    await form.get_by_role("button", name="Save").click()
    await expect(support_row).to_contain_text("first_response_minutes")
    await expect(support_row).to_contain_text("Anna Novak")

    # --- Routing rules (settings kept in the database).
    main = await section(page, "Routing rules")
    await expect(main.get_by_role("heading", name="Queue rules")).to_be_visible()
    queue_rules = main.locator("section.editor").first
    await queue_rules.get_by_label("Rules (JSON)").fill("{not json")
    await queue_rules.get_by_role("button", name="Save").click()
    await expect(error_beside(queue_rules.locator("[data-field=rules]"))).to_have_text(
        "Not valid JSON"
    )
    await queue_rules.get_by_label("Rules (JSON)").fill('{"rules": [{"queue_id": 999}]}')
    await queue_rules.get_by_role("button", name="Save").click()
    await expect(error_beside(queue_rules.locator("[data-field=rules]"))).not_to_be_empty()
    await expect(error_beside(queue_rules.locator("[data-field=rules]"))).not_to_have_text(
        "Not valid JSON"
    )
    await screenshot(page, artifacts, "routing")

    # --- Web forms, with the snippet to embed.
    main = await section(page, "Web forms")
    await main.get_by_role("button", name="Add form").click()
    form = editor(page)
    await form.get_by_label("Address", exact=True).fill("contact")
    await form.get_by_label("Queue").select_option(label="Support")
    await form.get_by_role("button", name="Add form").click()
    snippet = main.get_by_label("Embed snippet of contact")
    await expect(snippet).to_have_value(re.compile(r'^<iframe src="http://[^"]+/forms/contact"'))
    await screenshot(page, artifacts, "forms")

    # --- Channel accounts: missing settings named beside their fields; add; test connection.
    main = await section(page, "Channel accounts")
    await main.get_by_role("button", name="Add account").click()
    form = editor(page)
    await form.get_by_label("Name", exact=True).fill("support")
    await form.get_by_role("button", name="Add account").click()
    await expect(error_beside(form.locator("[data-field='settings.imap_host']"))).not_to_be_empty()
    await form.get_by_label("Address *").fill("support@shop.example")
    await form.get_by_label("Imap Host").fill("127.0.0.1")
    await form.get_by_label("Imap Port").fill("1")
    await form.get_by_label("Imap Tls").select_option("none")
    await form.get_by_label("Imap User").fill("support")
    await form.get_by_label("Smtp Host").fill("127.0.0.1")
    await form.get_by_label("Smtp Port").fill("1")
    await form.get_by_label("Smtp Tls").select_option("none")
    await form.get_by_role("button", name="Add account").click()
    account_row = main.locator("tr", has_text="support")
    await expect(account_row).to_be_visible()
    await account_row.get_by_role("button", name="Test connection").click()
    await expect(account_row.get_by_role("status")).to_contain_text("Failed")
    async with sessions() as session:
        assert await session.scalar(select(ChannelAccount.name)) == "support"
    # A secret is write-only: set it by editing, the page then says it is set.
    await account_row.get_by_role("button", name="Edit").click()
    await editor(page).get_by_label("Imap Password").fill("app password")
    await editor(page).get_by_role("button", name="Save").click()
    await expect(editor(page)).to_have_count(0)
    accounts = await (await admin.get("/api/v1/channel-accounts")).json()
    assert accounts[0]["settings"]["imap_password_set"] is True
    await account_row.get_by_role("button", name="Edit").click()
    await expect(editor(page).get_by_label("Imap Password")).to_have_value("")
    await expect(editor(page)).to_contain_text("Set; leave empty to keep it")
    await editor(page).get_by_role("button", name="Cancel").click()
    await screenshot(page, artifacts, "channels")

    # --- Canned responses.
    main = await section(page, "Canned responses")
    await main.get_by_role("button", name="Add canned response").click()
    form = editor(page)
    await form.get_by_label("Title").fill("Thanks")
    await form.get_by_label("Text").fill("Thank you, {{contact.first_name}}!")
    await form.get_by_role("button", name="Add").click()
    await expect(main.locator("tr", has_text="Thanks")).to_contain_text("Shared")
    await screenshot(page, artifacts, "canned")

    # --- API tokens: shown once; revoke.
    main = await section(page, "API tokens")
    await main.get_by_role("button", name="Create token").click()
    await editor(page).get_by_label("Name").fill("shop")
    await editor(page).get_by_role("button", name="Create token").click()
    await expect(page.locator("#new-token")).to_have_text(re.compile(r"^omni_"))
    token = await page.locator("#new-token").inner_text()
    assert (
        await client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    ).status == 200
    await screenshot(page, artifacts, "tokens")
    await main.locator("tr", has_text="shop").get_by_role("button", name="Revoke").click()
    await expect(main.locator("tr", has_text="shop")).to_contain_text("Revoked")
    assert (
        await client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    ).status == 401

    # --- The audit log: every change above, filtered and paged.
    main = await section(page, "Audit log")
    await expect(main.locator("tbody tr").first).to_be_visible()
    await main.get_by_label("Action").fill("operator.update")
    await main.get_by_role("button", name="Filter").click()
    await expect(main.locator("tbody tr")).to_have_count(2)  # capacity, then deactivation
    await expect(main.locator("tbody tr").first).to_contain_text("Maria Keller")
    await screenshot(page, artifacts, "audit")
    async with sessions() as session:
        actions = set(await session.scalars(select(AuditEntry.action)))
    assert {
        "operator.create",
        "operator.queues",
        "operator.update",
        "operator.password",
        "queue.update",
        "queue.members",
        "form.create",
        "token.create",
        "token.revoke",
    } <= actions

    # --- A supervisor sees the sections they may use, read-only where they may not change.
    supervisor = await make_user("supervisor", email="lena@example.com", name="Lena Fischer")
    page = await open_as(browsing, supervisor, "/admin/")
    nav = page.get_by_role("navigation", name="Administration")
    await expect(nav.get_by_role("link")).to_have_text(
        ["Operators", "Queues", "Web forms", "Canned responses"]
    )
    await expect(page.get_by_role("button", name="Add operator")).to_have_count(0)
    await expect(page.locator("#admin-main")).to_contain_text("Only admins can change the team.")
