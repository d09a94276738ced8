"""What Odoo's records mean in the bridge's models: `res.partner` as a `Customer`,
`sale.order` (with its pickings and invoices) as an `OrderSummary`, `sale.order.line` as an
`OrderLine`, `stock.picking` as a `Shipment`, `account.move` as an `Invoice`, a
`product.product` read in a warehouse's context as a `StockLevel`, and as a `Product`.

These are pure functions of the records the Odoo adapter (`erp_bridge.odoo`) has read (as
`erp_bridge.odoo_client` decodes Odoo's values); they ask Odoo nothing.

- **order status**: draft/sent are drafts, cancel cancelled; a confirmed order (`sale`, or
  `done` = locked before Odoo 17) says how far its delivery is from `delivery_status` (Odoo 17
  and later) or else from its outgoing pickings: nothing delivered yet is confirmed, some is
  processing, all of it delivered (shipped when a carrier has a tracking number: Odoo does not
  know when the parcel reaches the door). `status_label` is Odoo's own word.
- **payment** comes from the order's customer invoices (`payment_state`): all paid (or in
  payment) paid, some partial, none unpaid, reversed refunded; no invoice yet unknown.
- **stock**: on hand is `qty_available`; available is `free_qty` where Odoo has it, else on
  hand less what the forecast (`virtual_available`) falls short of it (reserved).
- **money** needs an ISO currency code; without one there is no amount.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from erp_bridge.base import ErpUnavailable
from erp_bridge.models import (
    Customer,
    Invoice,
    InvoiceStatus,
    Money,
    OrderLine,
    OrderStatus,
    OrderSummary,
    PaymentStatus,
    Product,
    Shipment,
    StockLevel,
)
from erp_bridge.odoo_client import (
    Record,
    many2one,
    many2one_name,
    number,
    odoo_date,
    odoo_datetime,
    text,
)

# Odoo's words, for the operator who knows Odoo (status_label, Shipment.status).
ORDER_STATES = {
    "draft": "Quotation",
    "sent": "Quotation Sent",
    "sale": "Sales Order",
    "done": "Locked",
    "cancel": "Cancelled",
}
DELIVERY_STATUSES = {
    "pending": "Not Delivered",
    "started": "Started",
    "partial": "Partially Delivered",
    "full": "Fully Delivered",
}
PICKING_STATES = {
    "draft": "Draft",
    "waiting": "Waiting Another Operation",
    "confirmed": "Waiting",
    "assigned": "Ready",
    "done": "Done",
    "cancel": "Cancelled",
}


def customer(record: Record) -> Customer:
    """A partner (the commercial partner of the match) as the customer."""
    return Customer(
        ref=str(record["id"]),
        name=text(record.get("name")) or f"partner {record['id']}",
        email=text(record.get("email")),
        phone=text(record.get("phone")) or text(record.get("mobile")),
        tax_id=text(record.get("vat")),
        tier=many2one_name(record.get("property_product_pricelist")),
    )


def turnover(moves: list[Record]) -> Money | None:
    """Sales from posted customer invoices less credit notes (`amount_total_signed`, in the
    company's currency); None without any, or when they are in several currencies (several
    companies)."""
    totals: dict[str, Decimal] = {}
    for move in moves:
        currency = many2one_name(move.get("company_currency_id"))
        if currency is None:
            return None
        totals[currency] = totals.get(currency, Decimal(0)) + number(
            move.get("amount_total_signed")
        )
    if len(totals) != 1:
        return None
    ((currency, amount),) = totals.items()
    return money(amount, currency)


def order_summary(
    order: Record,
    pickings: list[Record],
    invoices: list[Record],
    tracking_url_template: str | None,
) -> OrderSummary:
    """A sales order with its outgoing pickings and its invoices."""
    state = text(order.get("state")) or ""
    delivery = text(order.get("delivery_status"))
    status = order_status(state, delivery, pickings)
    label = ORDER_STATES.get(state, state)
    if delivery and state in ("sale", "done"):
        label = f"{label}, {DELIVERY_STATUSES.get(delivery, delivery)}"
    tracked = [
        p
        for p in pickings
        if text(p.get("carrier_tracking_ref")) and text(p.get("state")) != "cancel"
    ]
    latest = max(tracked, key=lambda p: p["id"]) if tracked else None
    partner = many2one(order.get("partner_id"))
    return OrderSummary(
        ref=str(order["id"]),
        number=text(order.get("name")) or str(order["id"]),
        customer_ref=str(partner[0]) if partner else None,
        ordered_at=odoo_datetime(order.get("date_order")),
        status=status,
        status_label=label,
        total=money(order.get("amount_total"), many2one_name(order.get("currency_id"))),
        payment_status=payment_status(state, invoices),
        tracking_number=text(latest.get("carrier_tracking_ref")) if latest else None,
        tracking_url=tracking_url(latest, tracking_url_template) if latest else None,
    )


def order_status(state: str, delivery: str | None, pickings: list[Record]) -> OrderStatus:
    if state in ("draft", "sent"):
        return OrderStatus.DRAFT
    if state == "cancel":
        return OrderStatus.CANCELLED
    if state not in ("sale", "done"):
        return OrderStatus.OTHER
    live = [p for p in pickings if text(p.get("state")) != "cancel"]
    done = [p for p in live if text(p.get("state")) == "done"]
    if delivery is None:  # before Odoo 17, or without sale_stock: the pickings say
        if not live or not done:
            delivery = "pending"
        else:
            delivery = "full" if len(done) == len(live) else "partial"
    if delivery == "full":
        tracked = any(text(p.get("carrier_tracking_ref")) for p in done)
        return OrderStatus.SHIPPED if tracked else OrderStatus.DELIVERED
    if delivery in ("partial", "started"):
        return OrderStatus.PROCESSING
    return OrderStatus.CONFIRMED


def payment_status(state: str, invoices: list[Record]) -> PaymentStatus:
    if state in ("draft", "sent", "cancel"):
        return PaymentStatus.UNKNOWN
    posted = [move for move in invoices if text(move.get("state")) == "posted"]
    if not posted:
        return PaymentStatus.UNKNOWN  # nothing invoiced yet
    live = [move for move in posted if text(move.get("payment_state")) != "reversed"]
    if not live:
        return PaymentStatus.REFUNDED
    paid = [_paid(move) for move in live]
    if all(paid):
        return PaymentStatus.PAID
    if any(paid) or any(text(move.get("payment_state")) == "partial" for move in live):
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNPAID


def _paid(move: Record) -> bool:
    payment = text(move.get("payment_state"))
    return payment in ("paid", "in_payment") or number(move.get("amount_residual")) <= 0


def order_line(row: Record, codes: dict[int, str | None]) -> OrderLine:
    """A sale.order.line, its product's internal reference (`default_code`) from `codes`."""
    product = many2one(row.get("product_id"))
    currency = many2one_name(row.get("currency_id"))
    return OrderLine(
        sku=codes.get(product[0]) if product else None,
        name=(text(row.get("name")) or (product[1] if product else "?"))[:500],
        quantity=number(row.get("product_uom_qty")),
        unit_price=money(row.get("price_unit"), currency),
        total=money(row.get("price_subtotal"), currency),
    )


def tracking_url(picking: Record, template: str | None) -> str | None:
    """The carrier's tracking page: the picking's own, else `template` with its number."""
    url = text(picking.get("carrier_tracking_url"))
    if url and url.startswith(("http://", "https://")):
        return url
    tracking = text(picking.get("carrier_tracking_ref"))
    if tracking and template:
        return template.format(tracking=quote(tracking, safe=""))
    return None


def shipment(picking: Record, tracking_url_template: str | None) -> Shipment:
    state = text(picking.get("state")) or ""
    return Shipment(
        ref=text(picking.get("name")) or str(picking["id"]),
        status=PICKING_STATES.get(state, state or "?"),
        carrier=many2one_name(picking.get("carrier_id")),
        tracking_number=text(picking.get("carrier_tracking_ref")),
        tracking_url=tracking_url(picking, tracking_url_template),
        shipped_at=odoo_datetime(picking.get("date_done")) if state == "done" else None,
    )


def invoice(move: Record, today: date) -> Invoice:
    """A customer invoice; overdue when its due date is before `today`."""
    currency = many2one_name(move.get("currency_id"))
    total = money(move.get("amount_total"), currency)
    due = money(move.get("amount_residual"), currency)
    if total is None or due is None:
        raise ErpUnavailable(f"Odoo sent invoice {move.get('name')!r} without a currency")
    due_at = odoo_date(move.get("invoice_date_due"))
    return Invoice(
        ref=str(move["id"]),
        number=text(move.get("name")) or str(move["id"]),
        order_number=text(move.get("invoice_origin")),
        issued_at=odoo_date(move.get("invoice_date")),
        due_at=due_at,
        total=total,
        amount_due=due,
        status=invoice_status(move, due.amount, due_at, today),
    )


def invoice_status(move: Record, due: Decimal, due_at: date | None, today: date) -> InvoiceStatus:
    payment = text(move.get("payment_state"))
    if text(move.get("state")) == "cancel" or payment == "reversed":
        return InvoiceStatus.CANCELLED
    if payment in ("paid", "in_payment") or due <= 0:
        return InvoiceStatus.PAID
    if due_at is not None and due_at < today:
        return InvoiceStatus.OVERDUE
    return InvoiceStatus.OPEN


def stock_level(warehouse: str, row: Record) -> StockLevel:
    """A product's quantities as read in one warehouse's context."""
    on_hand = number(row.get("qty_available"))
    if "free_qty" in row:
        free = number(row.get("free_qty"))
        reserved = max(on_hand - free, Decimal(0))
        available = free
    else:
        reserved = max(on_hand - number(row.get("virtual_available")), Decimal(0))
        available = on_hand - reserved
    return StockLevel(warehouse=warehouse, on_hand=on_hand, reserved=reserved, available=available)


def product(row: Record) -> Product:
    return Product(
        ref=str(row["id"]),
        sku=text(row.get("default_code")),
        name=text(row.get("name")) or f"product {row['id']}",
        price=money(row.get("lst_price"), many2one_name(row.get("currency_id"))),
    )


def money(amount: Any, currency: str | None) -> Money | None:
    if currency is None or not re.fullmatch(r"[A-Z]{3}", currency):
        return None
    return Money(amount=number(amount), currency=currency)
