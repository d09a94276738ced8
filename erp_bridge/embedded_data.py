"""The embedded ERP's data, written: products, warehouses and stock, orders with their lines,
invoices. The one place that checks and stores them, for the admin API (web/routes_erp.py),
the CSV import (erp_bridge/csv_import.py) and the demo; erp_bridge/embedded.py reads them.

**Customers are omnicrm's own.** The embedded ERP has no customer table: a person is a
contact, a company a legal entity (`legal_entity.erp_ref`). Where a record names its
customer (`customer`), it may give

- `contact:<id>`, a contact;
- an ERP reference: a contact's `erp_ref` (their customer number in a shop or an old ERP),
  else a legal entity's `erp_ref` (e.g. `C-10042`);
- an email address or a `+`-prefixed phone number one contact holds (its identities).

A contact is stored as its canonical reference, its `erp_ref` when it has one, else
`contact:<id>`, together with `erp_order.contact_id`; a legal entity as its `erp_ref`. Readers
match an order by either, so a customer number given to a contact later still finds the
orders stored before. A merged contact's orders are found through the contact it was merged
into; an erased contact is no customer.

Every write is validated as the whole record it makes (a change merged with what is stored),
errors name their fields (`quantity: not a number`, `lines.2.quantity: ...`), numbers and SKUs
identify records (saving the same number again updates it: imports are idempotent), and each
change is audited unless the caller audits the batch it belongs to (`audited=False`, the
import's one `erp.import` entry).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.identity import normalize_email, normalize_phone
from core.models import (
    Contact,
    ErpInvoice,
    ErpOrder,
    ErpOrderLine,
    ErpProduct,
    ErpStock,
    ErpWarehouse,
    Identity,
    IdentityKind,
    LegalEntity,
)
from core.validation import check_storable
from erp_bridge.models import InvoiceStatus, OrderStatus, PaymentStatus

ModelT = TypeVar("ModelT", bound=BaseModel)
Outcome = Literal["created", "updated", "unchanged"]

CONTACT_REF = re.compile(r"contact:([0-9]{1,18})")
MAX_LINES = 1000
CENT = Decimal("0.01")
MILLI = Decimal("0.001")


# --- values ---------------------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _aware(value: datetime) -> datetime:
    """A time without an offset is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// address")
    return value


Key = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Name = Annotated[str, Field(min_length=1, max_length=500)]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Currency = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{3}$")]
# Stored as the columns hold them (12.5 as 12.50), so what is written compares with what is read.
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    AfterValidator(lambda value: value.quantize(CENT)),
]
Quantity = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=3, allow_inf_nan=False),
    AfterValidator(lambda value: value.quantize(MILLI)),
]
Moment = Annotated[datetime, AfterValidator(_aware)]
WebAddress = Annotated[str, Field(max_length=2000), AfterValidator(_web_address)]
CustomerText = Annotated[str, Field(min_length=1, max_length=320)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProductData(_Data):
    """A product; `price` and `currency` go together."""

    sku: Key
    name: Name
    price: Amount | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _priced(self) -> ProductData:
        if (self.price is None) != (self.currency is None):
            missing = "currency" if self.currency is None else "price"
            raise _field_error(missing, "give the price and its currency together")
        return self


class StockData(_Data):
    """How much of product `sku` warehouse `warehouse` holds (made if new)."""

    sku: Key
    warehouse: Key
    on_hand: Quantity
    reserved: Quantity = Decimal(0)


class OrderLineData(_Data):
    sku: Key | None = None
    name: Name
    quantity: Quantity
    unit_price: Amount | None = None
    # Unless given: quantity times unit price, to the cent.
    total: Amount | None = None

    @model_validator(mode="after")
    def _total(self) -> OrderLineData:
        if self.total is None and self.unit_price is not None:
            self.total = (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)
        return self


class OrderData(_Data):
    """An order with its lines (which replace the stored ones); `total` is the lines' sum
    unless given."""

    number: Key
    customer: CustomerText
    ordered_at: Moment
    status: OrderStatus
    payment_status: PaymentStatus = PaymentStatus.UNKNOWN
    currency: Currency
    total: Amount | None = None
    tracking_number: Short | None = None
    tracking_url: WebAddress | None = None
    carrier: Short | None = None
    shipped_at: Moment | None = None
    delivered_at: Moment | None = None
    lines: list[OrderLineData] = Field(default_factory=list, max_length=MAX_LINES)

    @model_validator(mode="after")
    def _total(self) -> OrderData:
        totals = [line.total for line in self.lines]
        if self.total is None and self.lines and all(total is not None for total in totals):
            self.total = sum((total for total in totals if total is not None), Decimal(0))
        return self


class InvoiceData(_Data):
    """An invoice, of an order (`order_number`) or of a customer; the customer is the order's
    unless given. `amount_due` is the total for an open or overdue invoice, else nothing,
    unless given; `status` is paid when nothing is due, else open, unless given."""

    number: Key
    order_number: Key | None = None
    customer: CustomerText | None = None
    issued_at: date
    due_at: date | None = None
    total: Amount
    amount_due: Amount | None = None
    currency: Currency
    status: InvoiceStatus | None = None

    @model_validator(mode="after")
    def _settled(self) -> InvoiceData:
        if self.customer is None and self.order_number is None:
            raise _field_error("customer", "give the customer or the order_number")
        if self.amount_due is None:
            owing = self.status in (None, InvoiceStatus.OPEN, InvoiceStatus.OVERDUE)
            self.amount_due = self.total if owing else Decimal(0)
        if self.status is None:
            self.status = InvoiceStatus.PAID if self.amount_due == 0 else InvoiceStatus.OPEN
        if self.amount_due > self.total:
            raise _field_error("amount_due", "must not be more than the total")
        if self.due_at is not None and self.due_at < self.issued_at:
            raise _field_error("due_at", "must not be before issued_at")
        return self


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _field_error(field: str, message: str) -> _FieldError:
    return _FieldError(field, message)


# --- validation with one message per field ----------------------------------------------------

_MESSAGES = {
    "decimal_parsing": "not a number",
    "decimal_type": "not a number",
    "missing": "required",
    "date_parsing": "not a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "not a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "not a date (YYYY-MM-DD)",
    "datetime_parsing": "not a date and time (e.g. 2026-03-01T10:00:00Z)",
    "datetime_from_date_parsing": "not a date and time (e.g. 2026-03-01T10:00:00Z)",
    "extra_forbidden": "not a field of this record",
    "finite_number": "not a number",
}


def _message(problem: Mapping[str, Any]) -> str:
    kind = problem["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "enum":
        return f"must be one of {problem.get('ctx', {}).get('expected', '')}".rstrip()
    if kind == "greater_than_equal":
        return "must not be negative"
    if kind == "decimal_max_places":
        places = problem.get("ctx", {}).get("decimal_places")
        return f"at most {places} decimal places"
    if kind == "string_pattern_mismatch" and problem["loc"][-1:] == ("currency",):
        return "not a currency code (three letters, e.g. EUR)"
    if kind == "string_pattern_mismatch":
        return "must not hold control characters"
    if kind == "value_error":
        error = problem.get("ctx", {}).get("error")
        return str(error) if error is not None else str(problem["msg"])
    return str(problem["msg"])


def validated(model: type[ModelT], raw: Mapping[str, Any]) -> ModelT:
    """`raw` checked by `model`; InvalidInput naming each field at fault ("lines.1.quantity":
    "not a number"), blank text counting as not given."""
    values = {key: _blank_to_none(value) for key, value in raw.items() if value is not None}
    values = {key: value for key, value in values.items() if value is not None}
    if isinstance(values.get("lines"), list):
        values["lines"] = [
            {k: _blank_to_none(v) for k, v in line.items() if _blank_to_none(v) is not None}
            if isinstance(line, Mapping)
            else line
            for line in values["lines"]
        ]
    for key, value in values.items():
        check_storable(value, str(key))
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for problem in exc.errors(include_url=False):
            location = [str(part) for part in problem["loc"]]
            cause = problem.get("ctx", {}).get("error")
            if isinstance(cause, _FieldError):
                location = [*location, cause.field]
            fields.setdefault(".".join(location) or "body", _message(problem))
        error = InvalidInput("; ".join(f"{name}: {text}" for name, text in fields.items()))
        error.fields = fields
        raise error from None


# --- customers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRef:
    """A customer as orders and invoices store it: `ref`, and the contact when it is a
    person."""

    ref: str
    contact_id: int | None = None


def contact_ref(contact: Contact) -> str:
    """How the embedded ERP names a contact as a customer."""
    return contact.erp_ref or f"contact:{contact.id}"


async def live_contact(session: AsyncSession, contact: Contact | None) -> Contact | None:
    """The contact a record stands for now: a merged one's survivor; None when erased."""
    seen = 0
    while contact is not None and contact.merged_into_id is not None and seen < 100:
        contact = await session.get(Contact, contact.merged_into_id)
        seen += 1
    if contact is None or contact.erased_at is not None:
        return None
    return contact


async def contact_by_address(
    session: AsyncSession, text: str, default_region: str | None = None
) -> Contact | None:
    """The contact holding an email address or a phone number (None if nobody, or if the text
    is neither)."""
    kinds: tuple[IdentityKind, ...]
    try:
        if "@" in text:
            address, kinds = normalize_email(text), (IdentityKind.EMAIL,)
        else:
            address = normalize_phone(text, default_region)
            kinds = (IdentityKind.PHONE, IdentityKind.WHATSAPP)
    except InvalidInput:
        return None
    owner = await session.scalar(
        select(Identity.contact_id)
        .where(Identity.kind.in_([str(kind) for kind in kinds]), Identity.address == address)
        .order_by(Identity.id)
        .limit(1)
    )
    return await live_contact(session, await session.get(Contact, owner)) if owner else None


async def resolve_customer(
    session: AsyncSession, given: str, default_region: str | None = None
) -> CustomerRef:
    """The customer `given` names (see the module's docstring); 400 on `customer` if none."""
    text = given.strip()
    contact: Contact | None = None
    if match := CONTACT_REF.fullmatch(text):
        found = await session.get(Contact, int(match.group(1)))
        contact = await live_contact(session, found)
        if contact is None:
            raise InvalidInput(f"no contact {match.group(1)}", field="customer")
    elif "@" in text or text.startswith("+"):
        contact = await contact_by_address(session, text, default_region)
        if contact is None:
            raise InvalidInput(f"no contact has the address {text}", field="customer")
    else:
        found = await session.scalar(select(Contact).where(Contact.erp_ref == text))
        contact = await live_contact(session, found)
        if contact is None:
            entity = await session.scalar(select(LegalEntity.id).where(LegalEntity.erp_ref == text))
            if entity is None:
                raise InvalidInput(
                    f"no contact or legal entity has the ERP reference {text!r} (give "
                    "contact:<id>, an ERP reference, an email address or a +phone number)",
                    field="customer",
                )
            return CustomerRef(text)
    return CustomerRef(contact_ref(contact), contact.id)


async def set_contact_erp_ref(
    session: AsyncSession, actor: Actor, contact_id: int, erp_ref: str | None
) -> Contact:
    """Give a contact their ERP customer number (None takes it away); 409 if another contact
    or a legal entity has it. Orders stored under `contact:<id>` are still theirs."""
    contact = await live_contact(session, await session.get(Contact, contact_id))
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    ref = erp_ref.strip() if erp_ref else None
    if ref is not None:
        validated(_ErpRef, {"erp_ref": ref})
        taken = await session.scalar(
            select(Contact.id).where(Contact.erp_ref == ref, Contact.id != contact.id)
        )
        entity = await session.scalar(select(LegalEntity.id).where(LegalEntity.erp_ref == ref))
        if taken is not None or entity is not None:
            raise Conflict(f"the ERP reference {ref!r} is taken", field="erp_ref")
    if contact.erp_ref != ref:
        before = contact.erp_ref
        contact.erp_ref = ref
        await session.flush()
        await audit.record(
            session,
            actor,
            "contact.erp_ref",
            "contact",
            contact.id,
            {"before": before, "after": ref},
        )
    return contact


class _ErpRef(_Data):
    erp_ref: Key


# --- products ------------------------------------------------------------------------------


def _changes(row: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from the row's (Decimals compared as numbers)."""
    return {key: value for key, value in values.items() if getattr(row, key) != value}


async def _audit(
    session: AsyncSession,
    actor: Actor,
    audited: bool,
    action: str,
    entity: str,
    entity_id: int,
    details: dict[str, Any],
) -> None:
    if audited:
        await audit.record(session, actor, action, entity, entity_id, _jsonable(details))


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    def value(item: Any) -> Any:
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, datetime | date):
            return item.isoformat()
        if isinstance(item, enum.Enum):
            return item.value
        if isinstance(item, list | tuple):
            return [value(x) for x in item]
        return item

    return {key: value(item) for key, item in details.items()}


async def product_by_sku(session: AsyncSession, sku: str) -> ErpProduct | None:
    return await session.scalar(select(ErpProduct).where(ErpProduct.sku == sku.strip()))


async def save_product(
    session: AsyncSession,
    actor: Actor,
    data: ProductData,
    *,
    audited: bool = True,
    create_only: bool = False,
) -> tuple[ErpProduct, Outcome]:
    """Store a product by its SKU (an existing one is updated; 409 with `create_only`)."""
    values = data.model_dump()
    row = await product_by_sku(session, data.sku)
    if row is None:
        row = ErpProduct(**values)
        session.add(row)
        await session.flush()
        await _audit(session, actor, audited, "erp.product.create", "erp_product", row.id, values)
        return row, "created"
    if create_only:
        raise Conflict(f"a product has the SKU {data.sku!r} already", field="sku")
    return row, await _update(session, actor, audited, row, values, "erp.product.update")


async def change_product(
    session: AsyncSession, actor: Actor, product_id: int, changes: Mapping[str, Any]
) -> ErpProduct:
    """Change the fields given; 409 if the new SKU is another product's."""
    row = await _get(session, ErpProduct, product_id, "product")
    current = {key: getattr(row, key) for key in ProductData.model_fields}
    data = validated(ProductData, {**current, **changes})
    if data.sku != row.sku and await product_by_sku(session, data.sku) is not None:
        raise Conflict(f"a product has the SKU {data.sku!r} already", field="sku")
    await _update(session, actor, True, row, data.model_dump(), "erp.product.update")
    return row


async def delete_product(session: AsyncSession, actor: Actor, product_id: int) -> None:
    """Remove a product and its stock (order lines keep its SKU and name)."""
    row = await _get(session, ErpProduct, product_id, "product")
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, actor, "erp.product.delete", "erp_product", product_id, {"sku": row.sku}
    )


async def _update(
    session: AsyncSession,
    actor: Actor,
    audited: bool,
    row: ErpProduct | ErpStock | ErpInvoice,
    values: Mapping[str, Any],
    action: str,
) -> Outcome:
    changed = _changes(row, values)
    if not changed:
        return "unchanged"
    for key, value in changed.items():
        setattr(row, key, value)
    await session.flush()
    entity = str(row.__tablename__)
    await _audit(session, actor, audited, action, entity, row.id, changed)
    return "updated"


RowT = TypeVar("RowT", ErpProduct, ErpStock, ErpOrder, ErpInvoice, ErpWarehouse)


async def _get(session: AsyncSession, model: type[RowT], record_id: int, what: str) -> RowT:
    row = await session.get(model, record_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no {what} {record_id}")
    return row


# --- stock ----------------------------------------------------------------------------------


async def warehouse_named(session: AsyncSession, name: str, *, create: bool) -> ErpWarehouse:
    row = await session.scalar(select(ErpWarehouse).where(ErpWarehouse.name == name))
    if row is None:
        if not create:
            raise InvalidInput(f"no warehouse {name!r}", field="warehouse")
        row = ErpWarehouse(name=name)
        session.add(row)
        await session.flush()
    return row


async def save_stock(
    session: AsyncSession, actor: Actor, data: StockData, *, audited: bool = True
) -> tuple[ErpStock, Outcome]:
    """Set a product's stock in a warehouse (the warehouse is made if new)."""
    product = await product_by_sku(session, data.sku)
    if product is None:
        raise InvalidInput(f"no product has the SKU {data.sku!r}", field="sku")
    warehouse = await warehouse_named(session, data.warehouse, create=True)
    row = await session.scalar(
        select(ErpStock).where(
            ErpStock.product_id == product.id, ErpStock.warehouse_id == warehouse.id
        )
    )
    values = {"on_hand": data.on_hand, "reserved": data.reserved}
    if row is None:
        row = ErpStock(product_id=product.id, warehouse_id=warehouse.id, **values)
        session.add(row)
        await session.flush()
        details = {"sku": data.sku, "warehouse": data.warehouse, **values}
        await _audit(session, actor, audited, "erp.stock.set", "erp_stock", row.id, details)
        return row, "created"
    return row, await _update(session, actor, audited, row, values, "erp.stock.set")


async def change_stock(
    session: AsyncSession, actor: Actor, stock_id: int, changes: Mapping[str, Any]
) -> ErpStock:
    row = await _get(session, ErpStock, stock_id, "stock level")
    current = {"on_hand": row.on_hand, "reserved": row.reserved}
    data = validated(_Levels, {**current, **changes})
    await _update(session, actor, True, row, data.model_dump(), "erp.stock.set")
    return row


class _Levels(_Data):
    on_hand: Quantity
    reserved: Quantity = Decimal(0)


async def delete_stock(session: AsyncSession, actor: Actor, stock_id: int) -> None:
    row = await _get(session, ErpStock, stock_id, "stock level")
    await session.delete(row)
    await session.flush()
    await audit.record(session, actor, "erp.stock.delete", "erp_stock", stock_id, {})


# --- orders ---------------------------------------------------------------------------------

_ORDER_FIELDS = (
    "number",
    "ordered_at",
    "status",
    "payment_status",
    "currency",
    "total",
    "tracking_number",
    "tracking_url",
    "carrier",
    "shipped_at",
    "delivered_at",
)
_LINE_FIELDS = ("sku", "name", "quantity", "unit_price", "total")


async def order_by_number(session: AsyncSession, number: str) -> ErpOrder | None:
    return await session.scalar(
        select(ErpOrder)
        .where(ErpOrder.number == number.strip())
        .options(selectinload(ErpOrder.lines))
    )


async def save_order(
    session: AsyncSession,
    actor: Actor,
    data: OrderData,
    *,
    audited: bool = True,
    create_only: bool = False,
    default_region: str | None = None,
) -> tuple[ErpOrder, Outcome]:
    """Store an order by its number with its lines (an existing one is updated, its lines
    replaced; 409 with `create_only`); 400 on `customer` for a customer that is not one."""
    customer = await resolve_customer(session, data.customer, default_region)
    row = await order_by_number(session, data.number)
    if row is not None and create_only:
        raise Conflict(f"an order has the number {data.number!r} already", field="number")
    return await _store_order(session, actor, audited, row, data, customer)


async def change_order(
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    changes: Mapping[str, Any],
    *,
    default_region: str | None = None,
) -> ErpOrder:
    """Change the fields given (`lines`, when given, replace them all); 409 if the new number
    is another order's."""
    row = await session.scalar(
        select(ErpOrder)
        .where(ErpOrder.id == order_id)
        .options(selectinload(ErpOrder.lines))
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"no order {order_id}")
    current: dict[str, Any] = {key: getattr(row, key) for key in _ORDER_FIELDS}
    current["customer"] = row.customer_ref
    current["lines"] = [{key: getattr(line, key) for key in _LINE_FIELDS} for line in row.lines]
    if "lines" in changes and "total" not in changes:
        current.pop("total")  # the new lines' sum
    data = validated(OrderData, {**current, **changes})
    if data.number != row.number and await order_by_number(session, data.number) is not None:
        raise Conflict(f"an order has the number {data.number!r} already", field="number")
    if "customer" in changes:
        customer = await resolve_customer(session, data.customer, default_region)
    else:
        customer = CustomerRef(row.customer_ref, row.contact_id)
    await _store_order(session, actor, True, row, data, customer)
    return row


async def _store_order(
    session: AsyncSession,
    actor: Actor,
    audited: bool,
    row: ErpOrder | None,
    data: OrderData,
    customer: CustomerRef,
) -> tuple[ErpOrder, Outcome]:
    values: dict[str, Any] = {key: getattr(data, key) for key in _ORDER_FIELDS}
    values["status"] = str(data.status)
    values["payment_status"] = str(data.payment_status)
    values["customer_ref"] = customer.ref
    values["contact_id"] = customer.contact_id
    lines = [tuple(getattr(line, key) for key in _LINE_FIELDS) for line in data.lines]
    if row is None:
        row = ErpOrder(**values, lines=[ErpOrderLine(**_line(line)) for line in lines])
        session.add(row)
        await session.flush()
        details = {**values, "lines": len(lines)}
        await _audit(session, actor, audited, "erp.order.create", "erp_order", row.id, details)
        return row, "created"
    changed = _changes(row, values)
    stored = [tuple(getattr(line, key) for key in _LINE_FIELDS) for line in row.lines]
    if not changed and stored == lines:
        return row, "unchanged"
    for key, value in changed.items():
        setattr(row, key, value)
    if stored != lines:
        row.lines = [ErpOrderLine(**_line(line)) for line in lines]
        changed["lines"] = len(lines)
    await session.flush()
    await _audit(session, actor, audited, "erp.order.update", "erp_order", row.id, changed)
    return row, "updated"


def _line(values: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(_LINE_FIELDS, values, strict=True))


async def delete_order(session: AsyncSession, actor: Actor, order_id: int) -> None:
    """Remove an order and its lines (its invoices stay, without the order)."""
    row = await _get(session, ErpOrder, order_id, "order")
    number = row.number
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, actor, "erp.order.delete", "erp_order", order_id, {"number": number}
    )


# --- invoices -------------------------------------------------------------------------------

_INVOICE_FIELDS = ("number", "issued_at", "due_at", "total", "amount_due", "currency")


async def save_invoice(
    session: AsyncSession,
    actor: Actor,
    data: InvoiceData,
    *,
    audited: bool = True,
    default_region: str | None = None,
) -> tuple[ErpInvoice, Outcome]:
    """Store an invoice by its number (an existing one is updated); 400 naming the order or
    customer that is not one."""
    order: ErpOrder | None = None
    if data.order_number is not None:
        order = await order_by_number(session, data.order_number)
        if order is None:
            raise InvalidInput(
                f"no order has the number {data.order_number!r}", field="order_number"
            )
    if data.customer is not None:
        customer_ref = (await resolve_customer(session, data.customer, default_region)).ref
    else:
        assert order is not None  # InvoiceData asks for one of them
        customer_ref = order.customer_ref
    values: dict[str, Any] = {key: getattr(data, key) for key in _INVOICE_FIELDS}
    values["status"] = str(data.status)
    values["customer_ref"] = customer_ref
    values["order_id"] = order.id if order is not None else None
    row = await session.scalar(select(ErpInvoice).where(ErpInvoice.number == data.number))
    if row is None:
        row = ErpInvoice(**values)
        session.add(row)
        await session.flush()
        await _audit(session, actor, audited, "erp.invoice.create", "erp_invoice", row.id, values)
        return row, "created"
    return row, await _update(session, actor, audited, row, values, "erp.invoice.update")
