"""What the ERP bridge answers, the same for every ERP: customers, orders with their lines,
payments and shipments, invoices with what is still due, stock per warehouse, products.

Every adapter maps its ERP's own records onto these (pydantic, frozen: values, no I/O).
Statuses are normalized to a few words the console and the placeholders understand, and the
ERP's own word is kept beside them (`status_label`) for the operator who knows the ERP.
Amounts are `Decimal` with their currency; quantities `Decimal` (an ERP may sell 2.5 m).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")]
Text = Annotated[str, Field(max_length=500)]


class Money(BaseModel):
    model_config = _FROZEN

    amount: Decimal
    currency: Currency


class OrderStatus(enum.StrEnum):
    DRAFT = "draft"  # a quotation, not confirmed
    CONFIRMED = "confirmed"
    PROCESSING = "processing"  # being picked, packed, partly shipped
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    OTHER = "other"


class PaymentStatus(enum.StrEnum):
    PAID = "paid"
    PARTIAL = "partial"
    UNPAID = "unpaid"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    OVERDUE = "overdue"
    CANCELLED = "cancelled"


class Customer(BaseModel):
    """The ERP's customer (a person, or the company a person orders for)."""

    model_config = _FROZEN

    ref: Text = Field(description="the ERP's own id of the customer")
    name: Text
    email: Text | None = None
    phone: Text | None = None
    tax_id: Text | None = None
    # What the ERP says of their standing (a price list, a segment), if it says anything.
    tier: Text | None = None
    # Sales to them over the last 12 months, where the ERP can tell.
    turnover: Money | None = None


class CustomerQuery(BaseModel):
    """How to find a contact's customer: their ERP reference if the CRM knows it (on the
    contact, its account or legal entity), else their addresses and tax id."""

    model_config = _FROZEN

    erp_refs: tuple[Text, ...] = ()
    emails: tuple[Text, ...] = ()
    phones: tuple[Text, ...] = ()
    tax_ids: tuple[Text, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.erp_refs or self.emails or self.phones or self.tax_ids)


class OrderLine(BaseModel):
    model_config = _FROZEN

    sku: Text | None = None
    name: Text
    quantity: Decimal
    unit_price: Money | None = None
    total: Money | None = None


class Shipment(BaseModel):
    model_config = _FROZEN

    ref: Text
    status: Text = Field(description="the ERP's word for it, e.g. done, in transit")
    carrier: Text | None = None
    tracking_number: Text | None = None
    tracking_url: Annotated[str, Field(max_length=2000)] | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


class OrderSummary(BaseModel):
    """An order as a list shows it."""

    model_config = _FROZEN

    ref: Text = Field(description="the ERP's own id of the order")
    number: Text = Field(description="what the customer and the operator call it, e.g. SO10330")
    customer_ref: Text | None = None
    ordered_at: datetime | date | None = None
    status: OrderStatus
    status_label: Text = ""
    total: Money | None = None
    payment_status: PaymentStatus = PaymentStatus.UNKNOWN
    # The latest shipment's tracking, for the list (the order itself has all shipments).
    tracking_number: Text | None = None
    tracking_url: Annotated[str, Field(max_length=2000)] | None = None


class Invoice(BaseModel):
    model_config = _FROZEN

    ref: Text
    number: Text
    order_number: Text | None = None
    issued_at: date | None = None
    due_at: date | None = None
    total: Money
    amount_due: Money
    status: InvoiceStatus


class Order(OrderSummary):
    """An order opened: its lines, shipments and invoices."""

    lines: tuple[OrderLine, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    invoices: tuple[Invoice, ...] = ()


class StockLevel(BaseModel):
    model_config = _FROZEN

    warehouse: Text
    on_hand: Decimal
    reserved: Decimal = Decimal(0)
    available: Decimal


class Stock(BaseModel):
    """A product's stock in every warehouse."""

    model_config = _FROZEN

    sku: Text
    name: Text = ""
    levels: tuple[StockLevel, ...] = ()

    @property
    def available(self) -> Decimal:
        return sum((level.available for level in self.levels), Decimal(0))


class Product(BaseModel):
    model_config = _FROZEN

    ref: Text
    sku: Text | None = None
    name: Text
    price: Money | None = None
