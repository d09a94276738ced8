"""What ERPNext's documents mean in the bridge's models, and the fields read of each: a
`Customer`, a `Sales Order` as an `OrderSummary` (its payment from its invoices), its items as
`OrderLine`s, a `Sales Invoice` as an `Invoice`, a `Bin` as a `StockLevel`; and Frappe's values
(numbers, money, dates and times in the site's zone, child tables) as Python's.

Pure functions of the rows the ERPNext adapter (`erp_bridge.erpnext`) has read (as
`erp_bridge.erpnext_client` decodes them); they ask ERPNext nothing. Phones, which ERPNext
keeps as typed, are compared by their digits (`same_phone`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from erp_bridge.base import ErpUnavailable
from erp_bridge.erpnext_client import Row
from erp_bridge.models import (
    Customer,
    Invoice,
    InvoiceStatus,
    Money,
    OrderLine,
    OrderStatus,
    OrderSummary,
    PaymentStatus,
    StockLevel,
)

# A phone is looked for, and compared, by at least this many of its last digits.
MIN_PHONE_DIGITS = 7


CUSTOMER_FIELDS = ["name", "customer_name", "email_id", "mobile_no", "tax_id", "customer_group"]
ORDER_FIELDS = [
    "name",
    "customer",
    "transaction_date",
    "status",
    "docstatus",
    "per_delivered",
    "per_billed",
    "advance_paid",
    "grand_total",
    "currency",
]
DELIVERY_FIELDS = [
    "name",
    "status",
    "posting_date",
    "posting_time",
    "transporter_name",
    "lr_no",
]
SHIPMENT_FIELDS = ["name", "status", "carrier", "awb_number", "tracking_url", "tracking_status"]
INVOICE_FIELDS = [
    "name",
    "posting_date",
    "due_date",
    "grand_total",
    "outstanding_amount",
    "currency",
    "status",
    "docstatus",
    "is_return",
]

ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TAGS = re.compile(r"<[^>]+>")


def customer_of(row: Row) -> Customer:
    name = str(row.get("name") or "")
    return Customer(
        ref=name,
        name=text_of(row.get("customer_name")) or name,
        email=text_of(row.get("email_id")),
        phone=text_of(row.get("mobile_no")),
        tax_id=text_of(row.get("tax_id")),
        tier=text_of(row.get("customer_group")),
    )


def _order_status(row: Row) -> OrderStatus:
    """A Sales Order's state in omnicrm's words. ERPNext "delivers" when a delivery note is
    submitted (the goods left the warehouse): fully delivered reads as delivered, partly as
    processing."""
    status = str(row.get("status") or "")
    docstatus = int(decimal_of(row.get("docstatus")))
    delivered = decimal_of(row.get("per_delivered"))
    if docstatus == 2 or status == "Cancelled":
        return OrderStatus.CANCELLED
    if docstatus == 0 or status == "Draft":
        return OrderStatus.DRAFT
    if status in ("Completed", "To Bill") or delivered >= 100:
        return OrderStatus.DELIVERED
    if status in ("To Deliver and Bill", "To Deliver", "To Pay"):
        return OrderStatus.PROCESSING if delivered > 0 else OrderStatus.CONFIRMED
    return OrderStatus.OTHER  # On Hold, Closed before delivery, a status of a newer version


def summary_of(row: Row) -> OrderSummary:
    name = str(row.get("name") or "")
    return OrderSummary(
        ref=name,
        number=name,
        customer_ref=text_of(row.get("customer")),
        ordered_at=_date(row.get("transaction_date")),
        status=_order_status(row),
        status_label=str(row.get("status") or "")[:500],
        total=money_of(row.get("grand_total"), row.get("currency")),
        payment_status=_advance_payment(row),
    )


def _advance_payment(row: Row) -> PaymentStatus:
    """What a Sales Order alone says of payment: its advance (invoices say the rest)."""
    if int(decimal_of(row.get("docstatus"))) != 1:
        return PaymentStatus.UNKNOWN
    total, advance = decimal_of(row.get("grand_total")), decimal_of(row.get("advance_paid"))
    if total > 0 and advance >= total:
        return PaymentStatus.PAID
    if advance > 0:
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNKNOWN


def order_payment(doc: Row, invoices: Sequence[Invoice]) -> PaymentStatus:
    """An opened order's payment, from its advance and its invoices."""
    status = _advance_payment(doc)
    if int(decimal_of(doc.get("docstatus"))) != 1 or status is PaymentStatus.PAID:
        return status
    issued = [invoice for invoice in invoices if invoice.status is not InvoiceStatus.CANCELLED]
    if not issued:
        return PaymentStatus.PARTIAL if status is PaymentStatus.PARTIAL else PaymentStatus.UNPAID
    due = sum((invoice.amount_due.amount for invoice in issued), Decimal(0))
    billed = sum((invoice.total.amount for invoice in issued), Decimal(0))
    if due <= 0:
        fully_billed = decimal_of(doc.get("per_billed")) >= 100
        return PaymentStatus.PAID if fully_billed else PaymentStatus.PARTIAL
    if due < billed or status is PaymentStatus.PARTIAL:
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNPAID


def line_of(item: Row, currency: str | None) -> OrderLine:
    code = text_of(item.get("item_code"))
    return OrderLine(
        sku=code,
        name=text_of(item.get("item_name")) or code or "",
        quantity=decimal_of(item.get("qty")),
        unit_price=money_of(item.get("rate"), currency),
        total=money_of(item.get("amount"), currency),
    )


def _invoice_status(row: Row, due: Decimal) -> InvoiceStatus:
    status = str(row.get("status") or "")
    if int(decimal_of(row.get("docstatus"))) == 2 or status == "Cancelled":
        return InvoiceStatus.CANCELLED
    if due <= 0:
        return InvoiceStatus.PAID  # Paid, a Return, Credit Note Issued
    if status.startswith("Overdue"):
        return InvoiceStatus.OVERDUE  # Overdue, Overdue and Discounted
    return InvoiceStatus.OPEN  # Unpaid, Partly Paid, (... and Discounted), Submitted


def invoice_of(row: Row, order_number: str | None) -> Invoice:
    currency = text_of(row.get("currency")) or ""
    total = money_of(row.get("grand_total"), currency)
    if total is None:
        raise ErpUnavailable(f"ERPNext's invoice {row.get('name')} has no usable currency")
    due = max(decimal_of(row.get("outstanding_amount")), Decimal(0))
    name = str(row.get("name") or "")
    return Invoice(
        ref=name,
        number=name,
        order_number=order_number,
        issued_at=_date(row.get("posting_date")),
        due_at=_date(row.get("due_date")),
        total=total,
        amount_due=Money(amount=due, currency=total.currency),
        status=_invoice_status(row, due),
    )


def level_of(row: Row) -> StockLevel:
    actual, reserved = decimal_of(row.get("actual_qty")), decimal_of(row.get("reserved_qty"))
    return StockLevel(
        warehouse=str(row["warehouse"]),
        on_hand=actual,
        reserved=reserved,
        available=actual - reserved,
    )


# --- Frappe's values ----------------------------------------------------------------------------


def text_of(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:500] or None


def decimal_of(value: Any) -> Decimal:
    """A Frappe number (JSON floats and ints, sometimes strings) as a Decimal; 0 if empty."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(int(value or 0))
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def money_of(amount: Any, currency: Any) -> Money | None:
    if amount is None or not isinstance(currency, str) or not ISO_CURRENCY.match(currency):
        return None
    return Money(amount=decimal_of(amount), currency=currency)


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _time(value: Any) -> time | None:
    """A Frappe Time ("9:05:07", "14:05:07.123456")."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?", value.strip())
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    try:
        return time(
            int(hours),
            int(minutes),
            int(seconds or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def local_datetime(day: Any, at: Any, zone: ZoneInfo | None) -> datetime | None:
    """A posting date and time in the site's zone; None when the zone is not known."""
    posted = _date(day)
    if posted is None or zone is None:
        return None
    return datetime.combine(posted, _time(at) or time(0), tzinfo=zone)


def child_rows(doc: Row, field: str) -> list[Row]:
    rows = doc.get(field)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def distinct_by_name(rows: Iterable[Row]) -> list[Row]:
    """Rows once per document (a child-table filter repeats a parent per matching row)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        name = str(row.get("name") or "")
        if name and name not in seen:
            seen.add(name)
            out.append(row)
    return out


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def email_variants(email: str) -> list[str]:
    email = email.strip()
    return unique([email, email.lower()])


def digits_of(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone or ""))


def _significant(digits: str) -> str:
    """A number's digits without an international (00) or trunk (0) prefix."""
    if digits.startswith("00"):
        return digits[2:]
    return digits[1:] if digits.startswith("0") else digits


def same_phone(wanted: str, stored: Any) -> bool:
    """Whether two spellings are one number: equal digits, or one ends with the other's
    national digits ("+49 30 1234567" and "030 1234567"), seven digits at least."""
    a, b = _significant(digits_of(wanted)), _significant(digits_of(stored))
    if len(a) < MIN_PHONE_DIGITS or len(b) < MIN_PHONE_DIGITS:
        return False
    return a == b or a.endswith(b) or b.endswith(a)


def contact_phones(contact: Row) -> list[Any]:
    return [
        contact.get("phone"),
        contact.get("mobile_no"),
        *(row.get("phone") for row in child_rows(contact, "phone_nos")),
    ]
