"""The knowledge base in the console, in Debian's Chromium: a supervisor writes an article
(a bad slug is named beside its field), edits it, meets a colleague's newer save as a
conflict, sees the versions and brings an old one back; an operator reads it and can change
nothing; the public page opens without sign-in. One browser for the module: one test.
Screenshots: test-artifacts/knowledge-*.png."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Locator, Page, expect

from tests.browser.conftest import LAPTOP, Browsing, assert_controls_labelled, open_as
from tests.conftest import UserFactory

ARTICLES = "/api/v1/knowledge/articles"
FIRST_BODY = "Send it back within 30 days.\n\nWrite the order number on the box."


def article_dialog(page: Page) -> Locator:
    return page.locator("#knowledge-dialog")


async def open_knowledge(page: Page) -> Locator:
    await page.get_by_role("tab", name="Knowledge").click()
    panel = page.locator("#panel-knowledge")
    await expect(panel).to_be_visible()
    return panel


async def shot(page: Page, artifacts: Path, name: str) -> None:
    await page.evaluate("document.getElementById('toasts')?.remove()")
    await page.screenshot(path=str(artifacts / f"knowledge-{name}.png"))


async def test_supervisors_write_and_revert_articles_operators_read_them(
    browsing: Browsing, browser: Browser, make_user: UserFactory, artifacts: Path
) -> None:
    sofia = await make_user("supervisor", email="sofia@example.com", name="Sofia Lind")
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    anna = await make_user("operator", email="anna@example.com", name="Anna Novak")

    page = await open_as(browsing, sofia)
    panel = await open_knowledge(page)
    await expect(panel.locator("#kb-list")).to_contain_text("No articles yet.")

    # A new article; the server's complaint about the slug shows beside the slug.
    await panel.get_by_role("button", name="New article").click()
    dialog = article_dialog(page)
    await expect(dialog.get_by_role("heading", name="New article")).to_be_visible()
    await dialog.get_by_label("Address name (slug)").fill("Returns & refunds")
    await dialog.get_by_label("Language", exact=True).fill("en")
    await dialog.get_by_label("Title").fill("Returning an order")
    await dialog.get_by_label("Tags").fill("Orders, returns")
    await dialog.get_by_label("Visibility").select_option("public")
    await dialog.get_by_label("Text").fill(FIRST_BODY)
    await assert_controls_labelled(page)
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.locator("#kb-edit-slug-error")).to_contain_text("lower-case letters")
    await expect(dialog.get_by_label("Address name (slug)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await dialog.get_by_label("Address name (slug)").fill("returns")
    await dialog.get_by_role("button", name="Save").click()

    # Saved: it reads as it was written, with its public link; the list shows it.
    await expect(dialog.get_by_role("heading", name="Returning an order")).to_be_visible()
    await expect(dialog.locator(".kb-body")).to_have_text(FIRST_BODY)
    await expect(dialog.locator(".kb-meta")).to_contain_text("Version 1")
    link = dialog.locator(".kb-link a")
    await expect(link).to_have_text(f"{browsing.base_url}/help/returns?lang=en")
    await expect(panel.locator(".kb-item")).to_have_count(1)
    await expect(panel.locator(".kb-item")).to_contain_text("orders")

    # An edit becomes version 2.
    await dialog.get_by_role("button", name="Edit").click()
    await expect(dialog.get_by_label("Address name (slug)")).to_be_disabled()
    await dialog.get_by_label("Text").fill("Send it back within 14 days.")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.locator(".kb-body")).to_have_text("Send it back within 14 days.")
    await expect(dialog.locator(".kb-meta")).to_contain_text("Version 2")

    # While Sofia edits, Maria saves a newer version: Sofia's save says so and keeps her text.
    await dialog.get_by_role("button", name="Edit").click()
    await dialog.get_by_label("Title").fill("Returns, refunds and exchanges")
    # Esc does not throw the edit away.
    await page.keyboard.press("Escape")
    await expect(page.locator(".toast").last).to_have_text("Save or cancel your changes first")
    await expect(dialog.get_by_label("Title")).to_have_value("Returns, refunds and exchanges")
    article_id = int(await page.evaluate("document.querySelector('.kb-item').dataset.articleId"))
    response = await admin.patch(
        f"{ARTICLES}/{article_id}", json={"version": 2, "tags": ["orders", "returns", "refunds"]}
    )
    assert response.status == 200, await response.text()
    await dialog.get_by_role("button", name="Save").click()
    conflict = dialog.locator(".kb-conflict")
    await expect(conflict).to_contain_text("Not saved")
    await expect(conflict).to_contain_text("Maria Keller saved version 3")
    await expect(conflict).to_contain_text("Changed: tags.")
    await expect(dialog.get_by_label("Title")).to_have_value("Returns, refunds and exchanges")
    await shot(page, artifacts, "conflict")
    await conflict.get_by_role("button", name="Save mine over theirs").click()
    await expect(
        dialog.get_by_role("heading", name="Returns, refunds and exchanges")
    ).to_be_visible()
    await expect(dialog.locator(".kb-meta")).to_contain_text("Version 4")

    # The history lists every version; the first one comes back as version 5.
    await dialog.get_by_role("button", name="History").click()
    versions = dialog.locator(".kb-versions li")
    await expect(versions).to_have_count(4)
    await expect(versions.first).to_contain_text("current")
    await expect(versions.last).to_contain_text("Sofia Lind · written")
    await expect(versions.nth(1)).to_contain_text("Maria Keller · tags")
    await dialog.get_by_role("button", name="Version 1", exact=True).click()
    await expect(dialog.locator(".kb-version-detail .kb-body")).to_have_text(FIRST_BODY)
    await shot(page, artifacts, "history")
    await dialog.get_by_role("button", name="Bring this version back").click()
    await expect(dialog.get_by_role("heading", name="Returning an order")).to_be_visible()
    await expect(dialog.locator(".kb-body")).to_have_text(FIRST_BODY)
    await expect(dialog.locator(".kb-meta")).to_contain_text("Version 5")
    await dialog.get_by_role("button", name="Close").click()

    # Anna, an operator, finds it by a word and reads it; she has nothing to change it with.
    other = await browser.new_context(base_url=browsing.base_url, viewport=LAPTOP)
    try:
        reader = await open_as(Browsing(other, browsing.base_url), anna)
        shelf = await open_knowledge(reader)
        await expect(shelf.get_by_role("button", name="New article")).to_have_count(0)
        await shelf.get_by_label("Search articles").fill("ORDER number")
        await expect(shelf.locator(".kb-item")).to_have_count(1)
        await shelf.locator(".kb-item").click()
        seen = article_dialog(reader)
        await expect(seen.locator(".kb-body")).to_have_text(FIRST_BODY)
        for name in ("Edit", "Add a language", "Archive"):
            await expect(seen.get_by_role("button", name=name)).to_have_count(0)
        await seen.get_by_role("button", name="History").click()
        await seen.get_by_role("button", name="Version 2", exact=True).click()
        await expect(seen.locator(".kb-version-detail")).to_contain_text("14 days")
        await expect(seen.get_by_role("button", name="Bring this version back")).to_have_count(0)
        await assert_controls_labelled(reader)
        await shot(reader, artifacts, "operator")
        await reader.keyboard.press("Escape")
        await expect(seen).to_be_hidden()
        await shelf.get_by_label("Search articles").fill("warranty")
        await expect(shelf.locator("#kb-list")).to_contain_text("No article matches.")
    finally:
        await other.close()

    # The link a customer gets opens the page without signing in.
    public = await browser.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer = await public.new_page()
        await customer.goto(f"{browsing.base_url}/help/returns?lang=en")
        await expect(customer.get_by_role("heading", level=1)).to_have_text("Returning an order")
        await expect(customer.locator("article p")).to_have_count(2)
        await customer.screenshot(path=str(artifacts / "knowledge-help-page.png"))
    finally:
        await public.close()
