"""The ERP in the console, in a real browser (issue 14's acceptance): an operator opens a
conversation, sees the customer's orders from the ERP, inserts the tracking link into the reply.

Over the embedded ERP (the default): Max wrote about his order 10330, shipped with a tracking
link; he has an older delivered order, an open invoice, and the desk chair is in two
warehouses. Anna signs in and opens his conversation:

- the customer card's Orders panel lists his orders, 10330 shipped with its tracking link
  (a new tab, `rel` noopener);
- the order number in his message is a link that opens the order: its line and its invoice;
- "Insert into reply" on the shipment's tracking puts the tracking URL into the composer at the
  caret, keeping what she had typed around it; sent, the reply is in the timeline and the
  outbox with the link;
- the stock lookup finds the chair and shows it per warehouse;
- a shared canned response with `{{order.number}}` and `{{order.tracking_url}}` is inserted
  filled from his latest order, and one with `{{order.status}}` and `{{invoice.amount_due}}`
  with its status word and the amount still due on his open invoice, in his language's money
  format;
- and the page logged no errors on the way.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from playwright.async_api import expect
from sqlalchemy import select

from core.audit import CLI
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, OutboxItem, Role, utcnow
from erp_bridge.embedded_data import (
    InvoiceData,
    OrderData,
    ProductData,
    StockData,
    save_invoice,
    save_order,
    save_product,
    save_stock,
)
from tests.browser.conftest import Browsing, assert_controls_labelled, sign_in, support_team
from tests.conftest import UserFactory
from web.keys import INGEST_POLICY

EMAIL = "max.mueller@example.de"
ORDER = "10330"
TRACKING = "https://track.example/10330"
MESSAGE = f"Hello, where is my order {ORDER}? It should have arrived by now."


async def max_with_orders(app: web.Application, sessions: SessionFactory, queue_id: int) -> int:
    """Max's conversation about order 10330, and what the embedded ERP knows of him: orders
    10301 (delivered) and 10330 (shipped, tracked), an open invoice for 10330, the desk chair
    in Hamburg and Berlin. Dated from the suite's clock."""
    now = utcnow()
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id="max-1",
                addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                display_name="Max Müller",
                text=MESSAGE,
                queue_id=queue_id,
                language="en",
            ),
            app[INGEST_POLICY],
        )
        await save_product(
            session,
            CLI,
            ProductData.model_validate(
                {"sku": "CHAIR-1", "name": "Desk chair", "price": "199.00", "currency": "EUR"}
            ),
        )
        for warehouse, on_hand, reserved in (("Hamburg", 7, 2), ("Berlin", 3, 0)):
            await save_stock(
                session,
                CLI,
                StockData.model_validate(
                    {
                        "sku": "CHAIR-1",
                        "warehouse": warehouse,
                        "on_hand": on_hand,
                        "reserved": reserved,
                    }
                ),
            )
        for number, ordered, status, tracking in (
            ("10301", now - timedelta(days=60), "delivered", None),
            (ORDER, now - timedelta(days=3), "shipped", TRACKING),
        ):
            await save_order(
                session,
                CLI,
                OrderData.model_validate(
                    {
                        "number": number,
                        "customer": EMAIL,
                        "ordered_at": ordered.isoformat(),
                        "status": status,
                        "currency": "EUR",
                        "carrier": "DHL" if tracking else None,
                        "tracking_number": f"T{number}" if tracking else None,
                        "tracking_url": tracking,
                        "shipped_at": (now - timedelta(days=2)).isoformat() if tracking else None,
                        "lines": [
                            {
                                "sku": "CHAIR-1",
                                "name": "Desk chair",
                                "quantity": "2",
                                "unit_price": "199.00",
                                "total": "398.00",
                            }
                        ],
                    }
                ),
            )
        await save_invoice(
            session,
            CLI,
            InvoiceData.model_validate(
                {
                    "number": "INV-1",
                    "order_number": ORDER,
                    "issued_at": (now - timedelta(days=3)).date().isoformat(),
                    "due_at": (now + timedelta(days=11)).date().isoformat(),
                    "total": "398.00",
                    "currency": "EUR",
                }
            ),
        )
    return arrived.conversation_id


async def test_an_operator_sees_the_customers_orders_and_inserts_the_tracking_into_the_reply(
    browsing: Browsing,
    make_user: UserFactory,
    app: web.Application,
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    team = await support_team(make_user)
    supervisor = await make_user(Role.SUPERVISOR, email="tom@example.com", name="Tom Becker")
    conversation_id = await max_with_orders(app, sessions, team.queue_id)
    assigned = await team.admin.post(
        f"/api/v1/conversations/{conversation_id}/assign",
        json={"assignee_id": team.operator.operator.id},
    )
    assert assigned.status == 200, await assigned.text()
    # The server keeps the ERP's placeholders as written; the console fills them.
    canned = await supervisor.post(
        "/api/v1/canned-responses",
        json={
            "title": "Order tracking",
            "body": "Your order {{order.number}} is on its way: {{order.tracking_url}}",
            "shared": True,
        },
    )
    assert canned.status == 201, await canned.text()
    status_canned = await supervisor.post(
        "/api/v1/canned-responses",
        json={
            "title": "Order status",
            "body": "Your order {{order.number}} is {{ order.status }}; "
            "{{invoice.amount_due}} is still due.",
            "shared": True,
        },
    )
    assert status_canned.status == 201, await status_canned.text()

    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.locator('[data-section="mine"] .inbox-item', has_text="Max Müller").click()
    view = page.locator(f'.conversation-view[data-conversation-id="{conversation_id}"]')
    await expect(view.locator(".timeline")).to_contain_text("where is my order")

    # The card's Orders panel: from the embedded ERP, newest first, 10330 shipped and tracked.
    panel = page.locator('.erp-panel[data-erp-kind="embedded"]')
    await expect(panel).to_have_attribute("data-state", "ready")
    await expect(panel.locator(".erp-customer-name")).to_have_text("Max Müller")
    await expect(panel.locator(".erp-order")).to_have_count(2)
    await expect(panel.locator(".erp-order").first).to_have_attribute("data-order-number", ORDER)
    order = panel.locator(f'.erp-order[data-order-number="{ORDER}"][data-order-status="shipped"]')
    await expect(order.locator(".erp-status")).to_have_text("shipped")
    tracking = order.locator(".erp-tracking a")
    await expect(tracking).to_have_attribute("href", TRACKING)
    await expect(tracking).to_have_attribute("target", "_blank")
    await expect(tracking).to_have_attribute("rel", _words_with("noopener"))
    await expect(tracking).to_have_text(f"T{ORDER}")
    await expect(panel.locator('.erp-order[data-order-number="10301"]')).to_have_attribute(
        "data-order-status", "delivered"
    )
    await expect(panel.locator('.erp-invoice[data-invoice-number="INV-1"]')).to_have_attribute(
        "data-invoice-status", "open"
    )

    # Anna starts her answer, then goes back to the end of its first line.
    textarea = page.get_by_label("Reply to the customer")
    await textarea.fill("Hello Max,\n\nBest regards, Anna")
    await textarea.press("Control+Home")
    await textarea.press("End")

    # The order number in Max's message is a link to the order: its line and its invoice.
    message = view.locator(".item-in", has_text="where is my order")
    link = message.locator(f'a[data-order-number="{ORDER}"]')
    await expect(link).to_have_text(ORDER)
    await link.click()
    dialog = page.locator(f'.erp-order-detail[data-order-number="{ORDER}"]')
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("data-state", "ready")
    await expect(dialog).to_have_attribute("data-order-status", "shipped")
    lines = dialog.locator(".erp-line")
    await expect(lines).to_have_count(1)
    await expect(lines).to_have_attribute("data-sku", "CHAIR-1")
    await expect(lines).to_contain_text("Desk chair")
    await expect(lines.locator("td.number").first).to_have_text("2")
    invoice = dialog.locator('.erp-invoice[data-invoice-number="INV-1"]')
    await expect(invoice).to_contain_text("INV-1")
    await expect(invoice).to_contain_text("398.00")
    shipment = dialog.locator(".erp-shipment")
    await expect(shipment.locator(".erp-tracking a")).to_have_attribute("href", TRACKING)
    await expect(shipment.locator(".erp-tracking a")).to_have_attribute(
        "rel", _words_with("noopener")
    )
    await page.screenshot(path=artifacts / "erp-order.png")

    # "Insert into reply" on the tracking: into the composer at the caret, the rest kept.
    await shipment.locator('[data-action="insert-tracking"]').click()
    await expect(dialog).to_be_hidden()
    sentence = f"Tracking for your order {ORDER}: {TRACKING}"
    await expect(textarea).to_have_value(f"Hello Max, {sentence}\n\nBest regards, Anna")
    await expect(textarea).to_be_focused()

    # Sent, the reply is in the timeline with the link, and on its way to Max.
    await page.keyboard.press("Control+Enter")
    reply = view.locator(".item-out", has_text=sentence)
    await expect(reply).to_have_count(1)
    await expect(reply).to_contain_text("Best regards, Anna")
    await expect(textarea).to_have_value("")
    async with sessions() as session:
        [queued] = list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.conversation_id == conversation_id)
            )
        )
    assert queued.recipient == EMAIL
    assert queued.payload["text"] == f"Hello Max, {sentence}\n\nBest regards, Anna"

    # The stock lookup: the chair, per warehouse (available: on hand less reserved).
    await panel.locator("#erp-stock-search").press_sequentially("chair")
    product = panel.locator('.erp-product[data-sku="CHAIR-1"]')
    await expect(product).to_contain_text("Desk chair")
    await product.click()
    card = panel.locator('.erp-stock-card[data-sku="CHAIR-1"]')
    await expect(card.locator(".erp-stock-level[data-warehouse]")).to_have_count(2)
    for warehouse, available in (("Hamburg", "5"), ("Berlin", "3")):
        level = card.locator(f'.erp-stock-level[data-warehouse="{warehouse}"]')
        await expect(level.locator(".erp-available")).to_have_text(available)
    await assert_controls_labelled(page)

    # The canned response: the ERP's placeholders filled from Max's latest order.
    await page.get_by_label("Insert a canned response").select_option(label="Order tracking")
    await expect(textarea).to_have_value(f"Your order {ORDER} is on its way: {TRACKING}")
    await expect(page.locator(".canned-note")).to_be_hidden()
    await page.screenshot(path=artifacts / "erp.png")
    # Its status as a word in Max's language (English), and what is due on INV-1 (398.00
    # EUR, nothing paid yet) formatted as the console formats money for English.
    await textarea.fill("")
    await page.get_by_label("Insert a canned response").select_option(label="Order status")
    await expect(textarea).to_have_value(f"Your order {ORDER} is shipped; €398.00 is still due.")
    await expect(page.locator(".canned-note")).to_be_hidden()

    assert browsing.watches[0].console_errors == []


def _words_with(word: str) -> re.Pattern[str]:
    """An attribute value (a space-separated list) that holds `word`."""
    return re.compile(rf"(^|\s){re.escape(word)}(\s|$)")
