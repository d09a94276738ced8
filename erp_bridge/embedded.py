"""The embedded ERP, omnicrm's default: products, stock, orders and invoices kept in omnicrm's
own database (the `erp_*` tables, written by erp_bridge/embedded_data.py: the admin API, the
CSV import `omnicrm erp import`, the demo).

Its customers are omnicrm's contacts and legal entities (embedded_data's docstring says how
they are named). `find_customer` tries, in order: the references it is given (a contact's
`erp_ref`, `contact:<id>`, a legal entity's `erp_ref`), then the email addresses, then the
phone numbers (a contact's identities), then the tax ids (a legal entity's `tax_id`, compared
as stored: without spaces or punctuation, upper case; only one with an `erp_ref` can have
orders, so only such a one is a customer). A contact's customer ref is its `erp_ref`, else
`contact:<id>`; their orders are those stored under either, or with their `contact_id` (or a
contact merged into them).

Answers: orders newest first (`ordered_at`, then id); an order's tracking columns are its one
shipment; an open invoice past its due date with something due reads as overdue; stock
per warehouse by name, `available` being on hand less reserved (never below zero); products
whose SKU or name holds the text, by SKU. Each call reads in one short session of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.accounts import normalize_tax_id
from core.db import SessionFactory
from core.models import (
    Contact,
    ErpInvoice,
    ErpOrder,
    ErpProduct,
    ErpStock,
    ErpWarehouse,
    Identity,
    IdentityKind,
    LegalEntity,
)
from erp_bridge.base import ErpAdapter, ErpContext, ErpKind
from erp_bridge.embedded_data import (
    CONTACT_REF,
    contact_by_address,
    contact_ref,
    live_contact,
)
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    InvoiceStatus,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSummary,
    PaymentStatus,
    Product,
    Shipment,
    Stock,
    StockLevel,
)
from erp_bridge.patterns import compile_pattern


class EmbeddedSettings(BaseModel):
    """The embedded ERP's settings (`omnicrm erp set embedded ...`)."""

    model_config = ConfigDict(extra="forbid")

    order_number_pattern: str = Field(
        default=r"\b\d{5}\b",
        max_length=200,
        description="how an order number looks in a customer's message (an RE2 pattern)",
    )

    @field_validator("order_number_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)
        return value


def build(settings: BaseModel, context: ErpContext, **policy: Any) -> EmbeddedErp:
    if context.sessions is None:
        raise ValueError("the embedded ERP needs omnicrm's database (ErpContext.sessions)")
    checked = EmbeddedSettings.model_validate(settings.model_dump())
    return EmbeddedErp(context.sessions, checked, **policy)


KIND = ErpKind(
    name="embedded",
    label="omnicrm's own (embedded)",
    settings_model=EmbeddedSettings,
    secret_fields=frozenset(),
    build=build,
)


def _storable(text: str) -> bool:
    """Whether `text` can be in the tables at all (PostgreSQL refuses NUL and lone surrogates
    even in a query): anything else names no record."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Decimal) -> Decimal:
    """2.000 as 2, 2.500 as 2.5: quantities as people write them."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    if amount is None or currency is None:
        return None
    return Money(amount=amount, currency=currency)


class EmbeddedErp(ErpAdapter):
    """The embedded ERP over omnicrm's own tables."""

    kind = "embedded"

    def __init__(
        self, sessions: SessionFactory, settings: EmbeddedSettings | None = None, **policy: Any
    ) -> None:
        super().__init__(**policy)
        self.sessions = sessions
        self.settings = settings or EmbeddedSettings()

    # --- customers -----------------------------------------------------------------------------

    async def do_find_customer(self, query: CustomerQuery) -> Customer | None:
        async with self.sessions() as session:
            for ref in filter(_storable, query.erp_refs):
                found = await self._by_ref(session, ref.strip())
                if found is not None:
                    return found
            for address in filter(_storable, (*query.emails, *query.phones)):
                contact = await contact_by_address(session, address.strip())
                if contact is not None:
                    return await self._customer(session, contact)
            tax_ids = [normalize_tax_id(tax_id) for tax_id in filter(_storable, query.tax_ids)]
            if tax_ids:
                entity = await session.scalar(
                    select(LegalEntity)
                    .where(LegalEntity.tax_id.in_(tax_ids), LegalEntity.erp_ref.is_not(None))
                    .order_by(LegalEntity.id)
                    .limit(1)
                )
                if entity is not None and entity.erp_ref is not None:
                    return await self._entity(session, entity, entity.erp_ref)
        return None

    async def _by_ref(self, session: AsyncSession, ref: str) -> Customer | None:
        contact: Contact | None
        if match := CONTACT_REF.fullmatch(ref):
            contact = await session.get(Contact, int(match.group(1)))
        else:
            contact = await session.scalar(select(Contact).where(Contact.erp_ref == ref))
        contact = await live_contact(session, contact)
        if contact is not None:
            return await self._customer(session, contact)
        entity = await session.scalar(select(LegalEntity).where(LegalEntity.erp_ref == ref))
        if entity is None:
            return None
        return await self._entity(session, entity, ref)

    async def _entity(self, session: AsyncSession, entity: LegalEntity, ref: str) -> Customer:
        return Customer(
            ref=ref,
            name=entity.name,
            tax_id=entity.tax_id,
            turnover=await self._turnover(session, _orders_of([ref])),
        )

    async def _customer(self, session: AsyncSession, contact: Contact) -> Customer:
        identities = list(
            await session.scalars(
                select(Identity).where(Identity.contact_id == contact.id).order_by(Identity.id)
            )
        )
        email = next((i.address for i in identities if i.kind == IdentityKind.EMAIL), None)
        phone = next(
            (
                i.address
                for i in identities
                if i.kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP)
            ),
            None,
        )
        ref = contact_ref(contact)
        condition = await orders_of_customer(session, ref)
        return Customer(
            ref=ref,
            name=contact.display_name or email or phone or ref,
            email=email,
            phone=phone,
            turnover=await self._turnover(session, condition),
        )

    async def _turnover(
        self, session: AsyncSession, condition: ColumnElement[bool]
    ) -> Money | None:
        """Orders over the last 12 months (cancelled ones aside), if all in one currency."""
        since = self.clock() - timedelta(days=365)
        rows = (
            await session.execute(
                select(ErpOrder.currency, func.sum(ErpOrder.total))
                .where(
                    condition,
                    ErpOrder.ordered_at >= since,
                    ErpOrder.status != OrderStatus.CANCELLED,
                    ErpOrder.total.is_not(None),
                )
                .group_by(ErpOrder.currency)
            )
        ).all()
        if len(rows) != 1:
            return None
        currency, total = rows[0]
        if total is None:
            return None
        return Money(amount=Decimal(str(total)).quantize(Decimal("0.01")), currency=currency)

    # --- orders and invoices --------------------------------------------------------------------

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        if not _storable(customer_ref):
            return []
        async with self.sessions() as session:
            condition = await orders_of_customer(session, customer_ref.strip())
            rows = await session.scalars(
                select(ErpOrder)
                .where(condition)
                .order_by(ErpOrder.ordered_at.desc(), ErpOrder.id.desc())
                .limit(max(limit, 0))
            )
            return [_summary(row) for row in rows]

    async def do_get_order(self, number: str) -> Order | None:
        if not _storable(number):
            return None
        async with self.sessions() as session:
            row = await session.scalar(
                select(ErpOrder)
                .where(ErpOrder.number == number.strip())
                .options(selectinload(ErpOrder.lines))
            )
            if row is None:
                return None
            invoices = await session.scalars(
                select(ErpInvoice)
                .where(ErpInvoice.order_id == row.id)
                .order_by(ErpInvoice.issued_at.desc(), ErpInvoice.id.desc())
            )
            return Order(
                **_summary(row).model_dump(),
                lines=tuple(
                    OrderLine(
                        sku=line.sku,
                        name=line.name,
                        quantity=_plain(line.quantity),
                        unit_price=_money(line.unit_price, row.currency),
                        total=_money(line.total, row.currency),
                    )
                    for line in row.lines
                ),
                shipments=_shipments(row),
                invoices=tuple(self._invoice(invoice, row.number) for invoice in invoices),
            )

    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]:
        if not _storable(customer_ref):
            return []
        async with self.sessions() as session:
            refs, contacts = await _customer_keys(session, customer_ref.strip())
            ordered = select(ErpOrder.id).where(_orders_of(refs, contacts))
            rows = await session.execute(
                select(ErpInvoice, ErpOrder.number)
                .outerjoin(ErpOrder, ErpOrder.id == ErpInvoice.order_id)
                .where(
                    or_(
                        ErpInvoice.customer_ref.in_(refs) if refs else false(),
                        ErpInvoice.order_id.in_(ordered) if contacts else false(),
                    )
                )
                .order_by(ErpInvoice.issued_at.desc(), ErpInvoice.id.desc())
            )
            return [self._invoice(invoice, number) for invoice, number in rows]

    def _invoice(self, row: ErpInvoice, order_number: str | None) -> Invoice:
        status = InvoiceStatus(row.status)
        today = self.clock().date()
        if (
            status is InvoiceStatus.OPEN
            and row.due_at is not None
            and row.due_at < today
            and row.amount_due > 0
        ):
            status = InvoiceStatus.OVERDUE
        return Invoice(
            ref=str(row.id),
            number=row.number,
            order_number=order_number,
            issued_at=row.issued_at,
            due_at=row.due_at,
            total=Money(amount=row.total, currency=row.currency),
            amount_due=Money(amount=row.amount_due, currency=row.currency),
            status=status,
        )

    # --- stock and products -------------------------------------------------------------------

    async def do_stock(self, sku: str) -> Stock | None:
        if not _storable(sku):
            return None
        async with self.sessions() as session:
            product = await session.scalar(select(ErpProduct).where(ErpProduct.sku == sku.strip()))
            if product is None:
                return None
            rows = await session.execute(
                select(ErpWarehouse.name, ErpStock.on_hand, ErpStock.reserved)
                .join(ErpWarehouse, ErpWarehouse.id == ErpStock.warehouse_id)
                .where(ErpStock.product_id == product.id)
                .order_by(ErpWarehouse.name)
            )
            levels = tuple(
                StockLevel(
                    warehouse=name,
                    on_hand=_plain(on_hand),
                    reserved=_plain(reserved),
                    available=_plain(max(on_hand - reserved, Decimal(0))),
                )
                for name, on_hand, reserved in rows
            )
            return Stock(sku=product.sku, name=product.name, levels=levels)

    async def do_search_products(self, text: str, limit: int) -> list[Product]:
        if not _storable(text):
            return []
        needle = text.strip().lower()
        async with self.sessions() as session:
            query = select(ErpProduct).order_by(ErpProduct.sku).limit(max(limit, 0))
            if needle:
                query = query.where(
                    or_(
                        func.lower(ErpProduct.sku).contains(needle, autoescape=True),
                        func.lower(ErpProduct.name).contains(needle, autoescape=True),
                    )
                )
            return [
                Product(
                    ref=str(row.id),
                    sku=row.sku,
                    name=row.name,
                    price=_money(row.price, row.currency),
                )
                for row in await session.scalars(query)
            ]

    async def do_check(self) -> str:
        async with self.sessions() as session:
            products = await session.scalar(select(func.count()).select_from(ErpProduct))
            orders = await session.scalar(select(func.count()).select_from(ErpOrder))
            warehouses = await session.scalar(select(func.count()).select_from(ErpWarehouse))
        return (
            f"the embedded ERP answers: {products} products in {warehouses} warehouses, "
            f"{orders} orders"
        )


# --- which orders are a customer's ------------------------------------------------------------


async def _customer_keys(session: AsyncSession, ref: str) -> tuple[list[str], list[int]]:
    """The refs a customer's records are stored under, and the contacts they are for: a
    contact's canonical ref, `contact:<id>` and erp_ref, and those of contacts merged into
    it; a legal entity's (or an unknown) ref alone."""
    contact: Contact | None = None
    if match := CONTACT_REF.fullmatch(ref):
        contact = await session.get(Contact, int(match.group(1)))
    elif ref:
        contact = await session.scalar(select(Contact).where(Contact.erp_ref == ref))
    contact = await live_contact(session, contact)
    if contact is None:
        return ([ref] if ref else []), []
    merged = list(
        await session.scalars(select(Contact).where(Contact.merged_into_id == contact.id))
    )
    people = [contact, *merged]
    refs = {f"contact:{person.id}" for person in people}
    refs |= {person.erp_ref for person in people if person.erp_ref}
    return sorted(refs), [person.id for person in people]


async def orders_of_customer(session: AsyncSession, ref: str) -> ColumnElement[bool]:
    """The condition on `erp_order` that holds for the orders of the customer `ref`."""
    refs, contacts = await _customer_keys(session, ref)
    return _orders_of(refs, contacts)


def _orders_of(refs: Sequence[str], contacts: Sequence[int] = ()) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if refs:
        conditions.append(ErpOrder.customer_ref.in_(list(refs)))
    if contacts:
        conditions.append(ErpOrder.contact_id.in_(list(contacts)))
    return or_(*conditions) if conditions else false()


_STATUSES = frozenset(str(status) for status in OrderStatus)
_PAYMENTS = frozenset(str(status) for status in PaymentStatus)


def _summary(row: ErpOrder) -> OrderSummary:
    status = OrderStatus(row.status) if row.status in _STATUSES else OrderStatus.OTHER
    paid = row.payment_status
    return OrderSummary(
        ref=str(row.id),
        number=row.number,
        customer_ref=row.customer_ref,
        ordered_at=row.ordered_at,
        status=status,
        status_label=row.status,
        total=_money(row.total, row.currency),
        payment_status=PaymentStatus(paid) if paid in _PAYMENTS else PaymentStatus.UNKNOWN,
        tracking_number=row.tracking_number,
        tracking_url=row.tracking_url,
    )


def _shipments(row: ErpOrder) -> tuple[Shipment, ...]:
    if not (row.tracking_number or row.tracking_url or row.carrier or row.shipped_at):
        return ()
    if row.delivered_at is not None:
        state = "delivered"
    elif row.shipped_at is not None:
        state = "in transit"
    else:
        state = "ready"
    return (
        Shipment(
            ref=row.number,
            status=state,
            carrier=row.carrier,
            tracking_number=row.tracking_number,
            tracking_url=row.tracking_url,
            shipped_at=row.shipped_at,
            delivered_at=row.delivered_at,
        ),
    )
