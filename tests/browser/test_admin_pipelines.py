"""The admin pages' Pipelines section in Debian's Chromium: an admin adds a pipeline (its
starter stages, a stage added before the closing ones, the API's per-field errors beside the
field of the right row), edits the default "Sales" pipeline (a stage renamed, a probability
changed, a stage moved up with the keyboard) and the API has the change, and trying to remove
a stage that holds a lead is refused (the 409's message shows, the stage stays). Screenshot:
test-artifacts/admin-pipelines.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import Browsing, assert_controls_labelled, open_as
from tests.conftest import User, UserFactory


def editor(page: Page) -> Locator:
    return page.locator("section.editor")


def stage(form: Locator, number: int) -> Locator:
    """The row of the `number`th stage (from 1), by its accessible name."""
    return form.get_by_role("group", name=f"Stage {number}", exact=True)


def error_beside(form: Locator, name: str) -> Locator:
    return form.locator(f"[data-field='{name}'] .error-text")


async def pipelines(user: User) -> dict[str, dict[str, Any]]:
    response = await user.get("/api/v1/pipelines", params={"include_archived": "true"})
    assert response.status == 200, await response.text()
    return {pipeline["name"]: pipeline for pipeline in await response.json()}


async def a_lead_from_a_web_form(admin: User, client: TestClient[Any, Any]) -> dict[str, Any]:
    """A visitor posts a form that opens a lead: it starts in Sales's first stage, "new"."""
    response = await admin.post("/api/v1/queues", json={"name": "Support"})
    assert response.status == 201, await response.text()
    response = await admin.post(
        "/api/v1/forms",
        json={
            "slug": "contact",
            "title": "Contact",
            "queue_id": (await response.json())["id"],
            "create_lead": True,
        },
    )
    assert response.status == 201, await response.text()
    posted = await client.post(
        "/forms/contact",
        json={"name": "Jonas Weber", "email": "jonas@example.com", "message": "A quote?"},
    )
    assert posted.status == 201, await posted.text()
    response = await admin.get("/api/v1/leads")
    assert response.status == 200, await response.text()
    [lead] = (await response.json())["items"]
    assert lead["stage"] == "new"
    return dict(lead)


async def test_an_admin_shapes_the_sales_pipelines(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    artifacts: Path,
) -> None:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    lead = await a_lead_from_a_web_form(admin, client)

    page = await open_as(browsing, admin, "/admin/#pipelines")
    main = page.locator("#admin-main")
    await expect(main.get_by_role("heading", name="Pipelines", level=1)).to_be_visible()
    sales_row = main.locator(f"tr[data-pipeline='{(await pipelines(admin))['Sales']['id']}']")
    await expect(sales_row).to_contain_text("gets new leads")
    await expect(sales_row.locator("li")).to_have_text(
        [
            "New (10 %)",
            "Qualified (30 %)",
            "Proposal (60 %, follow-up after 2 days)",
            "Won (100 %, won)",
            "Lost (0 %, lost)",
        ]
    )

    # --- A new pipeline starts with the usual stages; one more goes before the closing ones.
    await main.get_by_role("button", name="New pipeline").click()
    form = editor(page)
    await expect(form.get_by_role("heading", name="New pipeline")).to_be_visible()
    await form.locator("[data-field='name']").get_by_role("textbox").fill("Repeat sales")
    await expect(form.locator("fieldset.stage")).to_have_count(5)
    await expect(stage(form, 3).get_by_label("Follow-up after (days)")).to_have_value("2")
    await form.get_by_role("button", name="Add a stage").click()
    reorder = stage(form, 4)
    await expect(reorder.get_by_label("Name")).to_be_focused()
    await reorder.get_by_label("Name").fill("Reorder due")
    await expect(reorder.get_by_label("Key")).to_have_value("reorder_due")
    await expect(stage(form, 5).get_by_label("Key")).to_have_value("won")

    # A probability over 100: the API's message stands beside that row's field, nothing saved.
    await reorder.get_by_label("Probability (%)").fill("150")
    await form.get_by_role("button", name="Add pipeline").click()
    await expect(error_beside(form, "stages.3.probability")).to_contain_text(
        "less than or equal to 100"
    )
    await expect(reorder.get_by_label("Probability (%)")).to_have_attribute("aria-invalid", "true")
    await expect(reorder.get_by_label("Probability (%)")).to_be_focused()
    await expect(error_beside(form, "stages.3.name")).to_be_empty()
    # A key used twice (the server's own check): beside that row's key.
    await reorder.get_by_label("Probability (%)").fill("80")
    await reorder.get_by_label("Key").fill("proposal")
    await form.get_by_role("button", name="Add pipeline").click()
    await expect(error_beside(form, "stages.3.key")).to_contain_text("used twice")
    await expect(error_beside(form, "stages.3.probability")).to_be_empty()
    assert "Repeat sales" not in await pipelines(admin)
    await reorder.get_by_label("Key").fill("reorder_due")
    await form.get_by_role("button", name="Add pipeline").click()
    await expect(editor(page)).to_have_count(0)
    repeat_row = main.locator("tr", has_text="Repeat sales")
    await expect(repeat_row).to_contain_text("Reorder due (80 %)")
    await expect(repeat_row).not_to_contain_text("gets new leads")
    repeat = (await pipelines(admin))["Repeat sales"]
    assert [s["key"] for s in repeat["stages"]] == [
        "new",
        "qualified",
        "proposal",
        "reorder_due",
        "won",
        "lost",
    ]
    assert repeat["stages"][3]["probability"] == 80
    assert repeat["stages"][2]["follow_up_days"] == 2
    assert repeat["archived"] is False
    assert repeat["position"] == 1

    # --- Sales: a stage renamed, a probability changed, Proposal moved up with the keyboard.
    await sales_row.get_by_role("button", name="Edit").click()
    form = editor(page)
    await expect(form.get_by_role("heading", name="Edit Sales")).to_be_visible()
    await expect(stage(form, 1).get_by_label("Key")).to_have_attribute("readonly", "")
    await stage(form, 2).get_by_label("Name").fill("Qualified lead")
    await stage(form, 3).get_by_label("Probability (%)").fill("70")
    up = stage(form, 3).get_by_role("button", name="Move stage Proposal up")
    await up.focus()
    await page.keyboard.press("Enter")
    await expect(stage(form, 2).get_by_label("Key")).to_have_value("proposal")
    await expect(stage(form, 3).get_by_label("Key")).to_have_value("qualified")
    await expect(
        stage(form, 2).get_by_role("button", name="Move stage Proposal up")
    ).to_be_focused()
    await expect(stage(form, 1).get_by_role("button", name="Move stage New up")).to_be_disabled()
    await assert_controls_labelled(page)
    await page.evaluate("document.getElementById('toasts')?.remove()")
    await page.screenshot(path=str(artifacts / "admin-pipelines.png"), full_page=True)
    await form.get_by_role("button", name="Save").click()
    await expect(editor(page)).to_have_count(0)
    await expect(sales_row.locator("li")).to_have_text(
        [
            "New (10 %)",
            "Proposal (70 %, follow-up after 2 days)",
            "Qualified lead (30 %)",
            "Won (100 %, won)",
            "Lost (0 %, lost)",
        ]
    )
    sales = (await pipelines(admin))["Sales"]
    assert [(s["key"], s["name"], s["probability"]) for s in sales["stages"]] == [
        ("new", "New", 10),
        ("proposal", "Proposal", 70),
        ("qualified", "Qualified lead", 30),
        ("won", "Won", 100),
        ("lost", "Lost", 0),
    ]

    # --- The lead is in "New": removing that stage is refused and nothing changes.
    await sales_row.get_by_role("button", name="Edit").click()
    form = editor(page)
    await stage(form, 1).get_by_role("button", name="Remove stage New").click()
    await expect(form.locator("fieldset.stage")).to_have_count(4)
    await expect(stage(form, 1).get_by_role("button", name="Remove stage Proposal")).to_be_focused()
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator(".toast-error")).to_contain_text("still hold leads")
    await expect(error_beside(form, "stages").first).to_contain_text("new (1)")
    await expect(editor(page)).to_be_visible()
    await form.get_by_role("button", name="Cancel").click()
    await expect(sales_row.locator("li").first).to_have_text("New (10 %)")
    sales = (await pipelines(admin))["Sales"]
    assert [s["key"] for s in sales["stages"]] == ["new", "proposal", "qualified", "won", "lost"]
    response = await admin.get(f"/api/v1/leads/{lead['id']}")
    assert (await response.json())["stage"] == "new"
