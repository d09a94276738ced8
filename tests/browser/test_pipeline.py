"""The sales pipeline board in a real browser (Debian's Chromium).

Leads come from a web form (one that opens a lead per submission) and from the console's
"Make a lead"; the operator sees them on the board, edits one and sets its next step in the
side panel (the "No next step" flag goes), drags a card to Won (the columns' totals move),
moves one with the keyboard (a colleague's board follows live) and one to Lost (a reason is
asked and kept), and filters by owner (the hash keeps the filter across a reload). One browser
for the module: one test. Screenshots: test-artifacts/pipeline-board.png, pipeline-lead.png.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Locator, Page, expect

from core.clock import utcnow
from tests.browser.conftest import LAPTOP, Browsing, assert_controls_labelled, open_as
from tests.conftest import User, UserFactory

# What a column shows for a total it does not have.
NOTHING = "\N{EN DASH}"


async def sales_team(make_user: UserFactory) -> tuple[User, User]:
    """Anna, an operator of the Support queue; Tom, a supervisor. Two forms into Support:
    "contact" opens a lead per submission, "help" does not."""
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    anna = await make_user("operator", email="anna@example.com", name="Anna Novak")
    tom = await make_user("supervisor", email="tom@example.com", name="Tom Becker")
    response = await admin.post("/api/v1/queues", json={"name": "Support"})
    assert response.status == 201, await response.text()
    queue_id = (await response.json())["id"]
    response = await admin.put(
        f"/api/v1/queues/{queue_id}/members", json={"operator_ids": [anna.operator.id]}
    )
    assert response.status == 200, await response.text()
    for slug, create_lead in (("contact", True), ("help", False)):
        response = await admin.post(
            "/api/v1/forms",
            json={
                "slug": slug,
                "title": slug.title(),
                "queue_id": queue_id,
                "create_lead": create_lead,
            },
        )
        assert response.status == 201, await response.text()
    return anna, tom


async def submit_form(
    client: TestClient[Any, Any], slug: str, name: str, email: str, message: str
) -> int:
    response = await client.post(
        f"/forms/{slug}", json={"name": name, "email": email, "message": message}
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["conversation_id"])


async def lead_made_from(user: User, conversation_id: int) -> int:
    response = await user.get("/api/v1/leads", params={"limit": "50"})
    assert response.status == 200, await response.text()
    [lead_id] = [
        lead["id"]
        for lead in (await response.json())["items"]
        if lead["conversation_id"] == conversation_id
    ]
    return int(lead_id)


async def change_lead(user: User, lead_id: int, **changes: Any) -> None:
    response = await user.patch(f"/api/v1/leads/{lead_id}", json=changes)
    assert response.status == 200, await response.text()


async def lead_of(user: User, lead_id: int) -> dict[str, Any]:
    response = await user.get(f"/api/v1/leads/{lead_id}")
    assert response.status == 200, await response.text()
    lead: dict[str, Any] = await response.json()
    return lead


def column(page: Page, stage: str) -> Locator:
    return page.locator(f'.stage-column[data-stage="{stage}"]')


def card(page: Page, name: str) -> Locator:
    return page.locator(".lead-card", has=page.locator(".card-open", has_text=name))


async def shot(page: Page, path: Path) -> None:
    await page.evaluate("document.getElementById('toasts')?.remove()")
    await page.screenshot(path=str(path))


async def test_the_sales_pipeline_board(
    browser: Browser,
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    artifacts: Path,
) -> None:
    anna, tom = await sales_team(make_user)
    jonas_chat = await submit_form(
        client, "contact", "Jonas Weber", "jonas@nordwind.example", "Quote?"
    )
    await submit_form(client, "contact", "Eva Schmidt", "eva@example.com", "Prices for 20 seats?")
    paul_chat = await submit_form(client, "contact", "Paul Martin", "paul@example.com", "12 vans")
    lena_chat = await submit_form(
        client, "help", "Lena Fischer", "lena@example.com", "Annual plan?"
    )
    # Tom has worked two of them: a value on Jonas's, Paul's is his and has a proposal (its
    # stage's rule sets the next step: a call back in two days).
    await change_lead(tom, await lead_made_from(tom, jonas_chat), value="800", currency="EUR")
    await change_lead(
        tom,
        await lead_made_from(tom, paul_chat),
        title="Fleet renewal",
        value="3000",
        currency="EUR",
        expected_close_on="2026-09-30",
        owner_id=tom.operator.id,
        stage="proposal",
    )

    # In the console, Anna makes a lead of Lena's conversation; a second try says it has one.
    page = await open_as(browsing, anna, f"/console/#c={lena_chat}")
    await expect(page.get_by_role("link", name="Pipeline")).to_have_attribute("href", "/pipeline/")
    actions = page.get_by_role("group", name="Conversation actions")
    await actions.get_by_role("button", name="Make a lead").click()
    made = page.locator(".toast", has_text="Lead made.")
    link = made.get_by_role("link", name="Open it on the pipeline")
    await expect(link).to_have_attribute("href", re.compile(r"^/pipeline/#lead=\d+$"))
    lena_lead = int((await link.get_attribute("href") or "").rsplit("=", 1)[1])
    await actions.get_by_role("button", name="Make a lead").click()
    again = page.locator(".toast", has_text="This conversation has a lead already.")
    await again.get_by_role("link", name="Open it on the pipeline").click()

    # The board opens with that lead beside it; the three new leads have no next step yet.
    await page.wait_for_url(f"**/pipeline/#lead={lena_lead}")
    await page.locator("body[data-ready=true]").wait_for()
    panel = page.locator("#lead-panel")
    await expect(panel.get_by_role("heading", name="Lena Fischer", level=2)).to_be_visible()
    await expect(panel.locator('[data-field="owner"]')).to_have_text("Anna Novak")
    new = column(page, "new")
    await expect(new.locator('[data-field="count"]')).to_have_text("3")
    await expect(new.locator(".lead-card")).to_have_count(3)
    await expect(card(page, "Jonas Weber").locator('[data-field="owner"]')).to_have_text("Unowned")
    await expect(card(page, "Lena Fischer").locator('[data-field="owner"]')).to_have_text(
        "Anna Novak"
    )
    await expect(new.locator('[data-field="next-step"]')).to_have_text(["No next step"] * 3)
    fleet = column(page, "proposal").locator(".lead-card")
    await expect(fleet.locator('[data-field="owner"]')).to_have_text("Tom Becker")
    await expect(fleet.locator('[data-field="next-step"]')).to_contain_text(
        "Call back about the proposal"
    )
    await expect(page.locator("#board-summary")).to_have_text(
        "4 leads · open €3,800.00, weighted €1,880.00"
    )

    # In the panel: a title, a value and an expected close; then the next step.
    details = panel.locator("#lead-details")
    await details.get_by_label("Title").fill("Annual plan")
    await details.get_by_label("Value").fill("1200")
    await details.get_by_label("Currency").fill("eur")
    await details.get_by_label("Expected close").fill("2026-06-30")
    await details.get_by_role("button", name="Save").click()
    await expect(panel.get_by_role("heading", name="Annual plan", level=2)).to_be_visible()
    lena_card = card(page, "Annual plan")
    await expect(lena_card.locator('[data-field="contact"]')).to_have_text("Lena Fischer")
    await expect(lena_card.locator('[data-field="value"]')).to_have_text("€1,200.00")
    await expect(lena_card.locator('[data-field="expected-close"]')).to_have_text(
        "closes Jun 30, 2026"
    )
    await expect(new.locator('[data-field="total"] dd')).to_have_text("€2,000.00")
    await expect(new.locator('[data-field="weighted"] dd')).to_have_text("€200.00")

    steps = panel.locator("#lead-tasks")
    await expect(steps).to_contain_text("No open tasks")
    await steps.get_by_label("Note").fill("Send the contract")
    await steps.get_by_role("button", name="Add next step").click()
    await expect(steps.locator(".lead-tasks li")).to_contain_text("Send the contract")
    next_step = lena_card.locator('[data-field="next-step"]')
    await expect(next_step).to_contain_text("Next step")
    await expect(next_step).to_contain_text("Send the contract")
    await expect(next_step).not_to_have_class(re.compile("no-next-step"))
    await expect(new.locator(".no-next-step")).to_have_count(2)
    await expect(panel.locator(".history li")).to_have_count(1)
    history = panel.locator(".history a")
    await expect(history).to_have_attribute("href", f"/console/#c={lena_chat}")
    await assert_controls_labelled(page)
    await panel.evaluate("panel => panel.scrollTo(0, 0)")
    await shot(page, artifacts / "pipeline-lead.png")

    # Esc closes the panel; the address forgets the lead.
    await panel.get_by_label("Title").focus()
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page).to_have_url(re.compile(r"/pipeline/$"))
    # The focus is back on the card: Enter opens it again, the close button closes it.
    await expect(lena_card.locator(".card-open")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(panel.get_by_role("heading", name="Annual plan", level=2)).to_be_focused()
    await expect(page).to_have_url(re.compile(rf"/pipeline/#lead={lena_lead}$"))
    await panel.get_by_role("button", name="Close the lead").click()
    await expect(panel).to_be_hidden()

    # Tom, a supervisor, watches the same board from his own browser.
    watching = Browsing(
        await browser.new_context(base_url=browsing.base_url, viewport=LAPTOP),
        browsing.base_url,
    )
    try:
        other = await open_as(watching, tom, "/pipeline/")
        await other.evaluate("window.sameDocument = true")
        await expect(column(other, "new").locator(".lead-card")).to_have_count(3)
        await expect(other.locator("#board-summary")).to_contain_text("4 leads")

        # A drag to Won: the totals move from New to Won, and the server has it won.
        await lena_card.drag_to(column(page, "won"))
        won = column(page, "won")
        await expect(won.locator(".lead-card")).to_have_count(1)
        await expect(won.locator('[data-field="total"] dd')).to_have_text("€1,200.00")
        await expect(won.locator('[data-field="weighted"] dd')).to_have_text("€1,200.00")
        await expect(new.locator('[data-field="total"] dd')).to_have_text("€800.00")
        await expect(new.locator('[data-field="count"]')).to_have_text("2")
        assert (await lead_of(anna, lena_lead))["stage"] == "won"
        await expect(column(other, "won").locator(".lead-card")).to_contain_text("Annual plan")

        # The sales report Tom reads now counts it: Anna won one lead worth 1,200 EUR.
        today = utcnow().date()
        period = f"start={today - timedelta(days=1)}&end={today + timedelta(days=1)}"
        report = await watching.page()
        await report.goto(f"/reports/#report=sales_by_owner&{period}")
        await report.locator("body[data-ready=true]").wait_for()
        anna_row = report.locator("#report-table tbody tr", has_text="Anna Novak")
        await expect(anna_row.locator('[data-column="won"]')).to_have_text("1")
        await expect(anna_row.locator('[data-column="won_value_EUR"]')).to_have_text("1,200.00")
        await report.close()

        # Tom's lead is not Anna's to move: it offers no way to, and a drag changes nothing.
        fleet = card(page, "Fleet renewal")
        await expect(fleet).to_have_attribute("draggable", "false")
        await expect(fleet.locator("summary", has_text="Move to")).to_have_count(0)
        await fleet.drag_to(won)
        await expect(column(page, "proposal").locator(".lead-card")).to_contain_text(
            "Fleet renewal"
        )
        await expect(won.locator(".lead-card")).to_have_count(1)

        # The keyboard: Alt+→ on a focused card moves it one stage on; it keeps the focus,
        # and Tom's board shows the move without a reload.
        jonas = card(page, "Jonas Weber")
        await jonas.get_by_role("button", name="Jonas Weber").focus()
        await page.keyboard.press("Alt+ArrowRight")
        qualified = column(page, "qualified")
        await expect(qualified.locator(".lead-card")).to_contain_text("Jonas Weber")
        await expect(jonas.get_by_role("button", name="Jonas Weber")).to_be_focused()
        await expect(column(other, "qualified").locator(".lead-card")).to_contain_text(
            "Jonas Weber"
        )
        assert await other.evaluate("window.sameDocument") is True
        jonas_id = int(await jonas.get_attribute("data-lead-id") or "0")
        assert (await lead_of(anna, jonas_id))["stage"] == "qualified"
        await expect(qualified.locator('[data-field="total"] dd')).to_have_text("€800.00")
        await expect(new.locator('[data-field="total"] dd')).to_have_text(NOTHING)

        # "Move to…" Lost asks why, and will not go without a reason.
        eva = card(page, "Eva Schmidt")
        eva_id = int(await eva.get_attribute("data-lead-id") or "0")
        await eva.locator("summary", has_text="Move to…").click()
        await eva.get_by_role("button", name="Lost").click()
        dialog = page.get_by_role("dialog", name="Why was the lead lost?")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("“Eva Schmidt” goes to Lost.")
        await dialog.get_by_role("button", name="Mark as lost").click()
        await expect(dialog.locator("#lost-error")).to_have_text("Say why the lead was lost.")
        await dialog.get_by_label("Reason").fill("Chose a cheaper offer")
        await dialog.get_by_role("button", name="Mark as lost").click()
        await expect(dialog).to_be_hidden()
        lost = column(page, "lost")
        await expect(lost.locator(".lead-card")).to_contain_text("Eva Schmidt")
        await expect(lost.locator('[data-field="lost-reason"]')).to_have_text(
            "Chose a cheaper offer"
        )
        stored = await lead_of(anna, eva_id)
        assert (stored["stage"], stored["lost_reason"]) == ("lost", "Chose a cheaper offer")
        await expect(page.locator("#board-summary")).to_contain_text("4 leads")
        await assert_controls_labelled(page)
        await shot(page, artifacts / "pipeline-board.png")

        # Tom filters by owner: Anna's leads only.
        await other.get_by_label("Owner").select_option(label="Anna Novak")
        await expect(other.locator(".lead-card")).to_have_count(1)
        await expect(other.locator(".lead-card")).to_contain_text("Annual plan")
        await expect(other.locator("#board-summary")).to_have_text("1 lead")
        # And by source: what came from the contact form.
        await other.get_by_label("Owner").select_option(label="Anyone")
        await other.get_by_label("Source").fill("form:contact")
        await other.get_by_label("Source").press("Enter")
        await expect(other.locator(".card-open")).to_have_text(
            ["Jonas Weber", "Fleet renewal", "Eva Schmidt"]
        )
        await expect(other).to_have_url(re.compile(r"#source=form%3Acontact$"))
    finally:
        await watching.context.close()
    errors = [error for watch in watching.watches for error in watch.page_errors]
    assert not errors, f"uncaught script errors: {errors}"

    # Anna's own leads, then the unowned ones; a reload keeps the filter (it is in the hash).
    await page.get_by_label("Owner").select_option(label="Mine")
    await expect(page.locator(".lead-card")).to_have_count(1)
    await expect(page.locator(".lead-card")).to_contain_text("Annual plan")
    await expect(page).to_have_url(re.compile(r"#owner=me$"))
    await page.get_by_label("Owner").select_option(label="Unowned")
    await expect(page.locator(".card-open")).to_have_text(["Jonas Weber", "Eva Schmidt"])
    await page.reload()
    await page.locator("body[data-ready=true]").wait_for()
    await expect(page.get_by_label("Owner")).to_have_value("none")
    await expect(page.locator(".card-open")).to_have_text(["Jonas Weber", "Eva Schmidt"])
    await page.get_by_role("button", name="Clear filters").click()
    await expect(page.locator(".lead-card")).to_have_count(4)
    await expect(page).to_have_url(re.compile(r"/pipeline/$"))
