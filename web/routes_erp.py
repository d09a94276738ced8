"""The ERP bridge for admins: which ERP omnicrm reads (`/api/v1/erp/connection`, secrets
write-only, erp_bridge/config.py) and the embedded ERP's own records, its products, stock and
orders with their lines (`/api/v1/erp/embedded/...`, erp_bridge/embedded_data.py: the same
checks as the CSV import, one message per field, every change audited). What the console
reads from whichever ERP is configured is elsewhere (`/api/v1/erp/orders/{number}`, ...).

Bodies of the embedded ERP's records are parsed by erp_bridge/embedded_data.py itself (the
documented models are its own), so the API says "quantity: not a number" as the import does.
Lists are cursor pages; one record is found by its list's filters (`?sku=`, `?number=`),
changed and removed by id.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.clock import utcnow
from core.credentials import CredentialError
from core.models import ErpOrder, ErpProduct, ErpStock, ErpWarehouse
from core.pagination import decode_cursor, encode_cursor, keyset_page
from erp_bridge import config, registry
from erp_bridge.base import ErpError
from erp_bridge.embedded import orders_of_customer
from erp_bridge.embedded_data import (
    OrderData,
    ProductData,
    StockData,
    change_order,
    change_product,
    change_stock,
    delete_order,
    delete_product,
    delete_stock,
    save_order,
    save_product,
    save_stock,
    validated,
)
from erp_bridge.models import OrderStatus, PaymentStatus
from web.api import ADMINS, ApiRoutes, Call, NoBody, PageQuery, parse_body
from web.keys import CREDENTIALS
from web.schemas import Page

routes = ApiRoutes(tag="erp")


# --- the connection ---------------------------------------------------------------------------


class ErpKindOut(BaseModel):
    name: str
    label: str
    settings_schema: dict[str, Any] = Field(description="the JSON schema of its settings")
    secret_fields: list[str] = Field(description="settings that are write-only secrets")


class ErpConnectionOut(BaseModel):
    kind: str
    label: str
    configured: bool = Field(description="false: nothing is stored, the embedded ERP answers")
    enabled: bool
    settings: dict[str, Any] = Field(description="secrets are shown as <name>_set booleans")
    secret_fields: list[str]
    updated_at: datetime | None
    last_check_at: datetime | None
    last_check_result: str | None
    kinds: list[ErpKindOut] = Field(description="the kinds of ERP this server can connect to")


class ErpConnectionBody(BaseModel):
    """The kind and its settings: while that kind is in use only the settings sent change
    (a secret left out stays); another kind starts afresh."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=40)
    settings: dict[str, Any] = Field(default_factory=dict)
    enabled: bool | None = None


class ErpCheckOut(BaseModel):
    ok: bool
    message: str
    checked_at: datetime


def _connection_out(row: Any) -> ErpConnectionOut:
    kinds = registry.kinds()
    view = config.view_of(row, kinds)
    return ErpConnectionOut(
        kind=view.kind,
        label=view.label,
        configured=view.configured,
        enabled=view.enabled,
        settings=view.settings,
        secret_fields=list(view.secret_fields),
        updated_at=view.updated_at,
        last_check_at=view.last_check_at,
        last_check_result=view.last_check_result,
        kinds=[
            ErpKindOut(
                name=kind.name,
                label=kind.label,
                settings_schema=kind.settings_model.model_json_schema(),
                secret_fields=sorted(kind.secret_fields),
            )
            for kind in kinds.values()
        ],
    )


@routes.get(
    "/api/v1/erp/connection",
    summary="The ERP omnicrm reads (the embedded one when none is set); secrets never shown",
    roles=ADMINS,
    response=ErpConnectionOut,
)
async def get_connection(call: Call[NoBody, NoBody]) -> ErpConnectionOut:
    async with call.sessions() as session:
        return _connection_out(await config.get_connection(session))


@routes.put(
    "/api/v1/erp/connection",
    summary="Set the ERP and its settings, checked by the kind (400 per field)",
    roles=ADMINS,
    body=ErpConnectionBody,
    response=ErpConnectionOut,
)
async def put_connection(call: Call[ErpConnectionBody, NoBody]) -> ErpConnectionOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        row, _ = await config.set_connection(
            session,
            call.actor,
            call.request.app[CREDENTIALS],
            body.kind,
            body.settings,
            enabled=body.enabled,
        )
        return _connection_out(row)


@routes.post(
    "/api/v1/erp/connection/check",
    summary="Try the ERP's connection and credentials now (the outcome is kept on it)",
    roles=ADMINS,
    response=ErpCheckOut,
)
async def check_connection(call: Call[NoBody, NoBody]) -> ErpCheckOut:
    ok = False
    try:
        adapter = await config.build_adapter(
            call.sessions, call.request.app[CREDENTIALS], timeout=10.0
        )
        try:
            message = await adapter.check()
            ok = True
        finally:
            await adapter.close()
    except (ErpError, CredentialError) as exc:
        message = str(exc)
    except Exception as exc:  # an adapter's own failure, shown to the admin
        message = f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split()) or "no reason given"
    checked_at = utcnow()
    async with call.sessions() as session, session.begin():
        await config.record_check(session, ok=ok, message=message, at=checked_at)
    return ErpCheckOut(ok=ok, message=message, checked_at=checked_at)


# --- records: bodies parsed by embedded_data ----------------------------------------------------


class _Raw(BaseModel):
    model_config = ConfigDict(extra="allow")


async def _raw_body(call: Call[Any, Any]) -> dict[str, Any]:
    """The JSON object sent (checked storable by web.api), to validate with embedded_data."""
    return dict((await parse_body(call.request, _Raw)).model_extra or {})


def _after_id(cursor: str | None) -> int:
    return int(decode_cursor(cursor, int)[0]) if cursor else 0


async def _id_page(
    call: Call[Any, Any], query: Any, id_column: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    async with call.sessions() as session:
        rows = list(
            await session.execute(
                query.where(id_column > _after_id(cursor)).order_by(id_column).limit(limit + 1)
            )
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][0].id) if more and rows else None


# --- products -------------------------------------------------------------------------------


class ErpProductOut(BaseModel):
    id: int
    sku: str
    name: str
    price: Decimal | None
    currency: str | None
    updated_at: datetime


class ErpProductPatch(BaseModel):
    """The fields sent change; the product is checked as a whole."""

    sku: str | None = None
    name: str | None = None
    price: Decimal | None = None
    currency: str | None = None


class ProductQuery(PageQuery):
    q: str | None = Field(default=None, max_length=200, description="in the SKU or the name")


def _product_out(row: ErpProduct) -> ErpProductOut:
    return ErpProductOut(
        id=row.id,
        sku=row.sku,
        name=row.name,
        price=row.price,
        currency=row.currency,
        updated_at=row.updated_at,
    )


@routes.get(
    "/api/v1/erp/embedded/products",
    summary="The embedded ERP's products, by id",
    roles=ADMINS,
    query=ProductQuery,
    response=Page[ErpProductOut],
)
async def list_products(call: Call[NoBody, ProductQuery]) -> Page[ErpProductOut]:
    query = select(ErpProduct)
    if call.query.q:
        text = call.query.q.strip().lower()
        query = query.where(
            ErpProduct.sku.ilike(f"%{_escaped(text)}%", escape="\\")
            | ErpProduct.name.ilike(f"%{_escaped(text)}%", escape="\\")
        )
    rows, cursor = await _id_page(call, query, ErpProduct.id, call.query.limit, call.query.cursor)
    return Page[ErpProductOut](items=[_product_out(row[0]) for row in rows], next_cursor=cursor)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@routes.post(
    "/api/v1/erp/embedded/products",
    summary="Add a product to the embedded ERP (409 if its SKU is taken)",
    roles=ADMINS,
    documented_body=ProductData,
    response=ErpProductOut,
    status=201,
    errors=(400, 409, 413),
)
async def create_product(call: Call[NoBody, NoBody]) -> ErpProductOut:
    data = validated(ProductData, await _raw_body(call))
    async with call.sessions() as session, session.begin():
        row, _ = await save_product(session, call.actor, data, create_only=True)
        return _product_out(row)


@routes.patch(
    "/api/v1/erp/embedded/products/{id}",
    summary="Change a product of the embedded ERP",
    roles=ADMINS,
    documented_body=ErpProductPatch,
    response=ErpProductOut,
    errors=(400, 409, 413),
)
async def update_product(call: Call[NoBody, NoBody]) -> ErpProductOut:
    changes = await _raw_body(call)
    async with call.sessions() as session, session.begin():
        row = await change_product(session, call.actor, call.path_int("id"), changes)
        return _product_out(row)


@routes.delete(
    "/api/v1/erp/embedded/products/{id}",
    summary="Remove a product and its stock (order lines keep its SKU and name)",
    roles=ADMINS,
    status=204,
)
async def remove_product(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await delete_product(session, call.actor, call.path_int("id"))
    return web.Response(status=204)


# --- stock ----------------------------------------------------------------------------------


class ErpStockOut(BaseModel):
    id: int
    sku: str
    product_name: str
    warehouse: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal = Field(description="on hand less reserved, never below zero")
    updated_at: datetime


class ErpStockPatch(BaseModel):
    on_hand: Decimal | None = None
    reserved: Decimal | None = None


class StockQuery(PageQuery):
    sku: str | None = Field(default=None, max_length=100)
    warehouse: str | None = Field(default=None, max_length=100)


_STOCK = (
    select(ErpStock, ErpProduct.sku, ErpProduct.name, ErpWarehouse.name)
    .join(ErpProduct, ErpProduct.id == ErpStock.product_id)
    .join(ErpWarehouse, ErpWarehouse.id == ErpStock.warehouse_id)
)


def _stock_out(row: ErpStock, sku: str, product: str, warehouse: str) -> ErpStockOut:
    return ErpStockOut(
        id=row.id,
        sku=sku,
        product_name=product,
        warehouse=warehouse,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=max(row.on_hand - row.reserved, Decimal(0)),
        updated_at=row.updated_at,
    )


async def _one_stock(call: Call[Any, Any], stock_id: int) -> ErpStockOut:
    async with call.sessions() as session:
        found = (await session.execute(_STOCK.where(ErpStock.id == stock_id))).one()
    return _stock_out(*found)


@routes.get(
    "/api/v1/erp/embedded/stock",
    summary="The embedded ERP's stock levels (a product in a warehouse), by id",
    roles=ADMINS,
    query=StockQuery,
    response=Page[ErpStockOut],
)
async def list_stock(call: Call[NoBody, StockQuery]) -> Page[ErpStockOut]:
    query = _STOCK
    if call.query.sku:
        query = query.where(ErpProduct.sku == call.query.sku.strip())
    if call.query.warehouse:
        query = query.where(ErpWarehouse.name == call.query.warehouse.strip())
    rows, cursor = await _id_page(call, query, ErpStock.id, call.query.limit, call.query.cursor)
    return Page[ErpStockOut](items=[_stock_out(*row) for row in rows], next_cursor=cursor)


@routes.post(
    "/api/v1/erp/embedded/stock",
    summary="Set a product's stock in a warehouse (a new warehouse name makes it)",
    roles=ADMINS,
    documented_body=StockData,
    response=ErpStockOut,
    errors=(400, 413),
)
async def set_stock(call: Call[NoBody, NoBody]) -> ErpStockOut:
    data = validated(StockData, await _raw_body(call))
    async with call.sessions() as session, session.begin():
        row, _ = await save_stock(session, call.actor, data)
    return await _one_stock(call, row.id)


@routes.patch(
    "/api/v1/erp/embedded/stock/{id}",
    summary="Change a stock level's quantities",
    roles=ADMINS,
    documented_body=ErpStockPatch,
    response=ErpStockOut,
    errors=(400, 413),
)
async def update_stock(call: Call[NoBody, NoBody]) -> ErpStockOut:
    changes = await _raw_body(call)
    async with call.sessions() as session, session.begin():
        row = await change_stock(session, call.actor, call.path_int("id"), changes)
    return await _one_stock(call, row.id)


@routes.delete(
    "/api/v1/erp/embedded/stock/{id}",
    summary="Remove a stock level",
    roles=ADMINS,
    status=204,
)
async def remove_stock(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await delete_stock(session, call.actor, call.path_int("id"))
    return web.Response(status=204)


# --- orders ---------------------------------------------------------------------------------


class ErpOrderLineOut(BaseModel):
    sku: str | None
    name: str
    quantity: Decimal
    unit_price: Decimal | None
    total: Decimal | None


class ErpOrderOut(BaseModel):
    id: int
    number: str
    customer_ref: str = Field(description="contact:<id>, a contact's or a legal entity's erp_ref")
    contact_id: int | None
    ordered_at: datetime
    status: OrderStatus
    payment_status: PaymentStatus
    total: Decimal | None
    currency: str
    tracking_number: str | None
    tracking_url: str | None
    carrier: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    lines: list[ErpOrderLineOut]
    updated_at: datetime


class ErpOrderLinePatch(BaseModel):
    sku: str | None = None
    name: str
    quantity: Decimal
    unit_price: Decimal | None = None
    total: Decimal | None = None


class ErpOrderPatch(BaseModel):
    """The fields sent change (`lines` replace them all); the order is checked as a whole."""

    number: str | None = None
    customer: str | None = None
    ordered_at: datetime | None = None
    status: OrderStatus | None = None
    payment_status: PaymentStatus | None = None
    currency: str | None = None
    total: Decimal | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    carrier: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    lines: list[ErpOrderLinePatch] | None = None


class OrderQuery(PageQuery):
    customer: str | None = Field(
        default=None, max_length=320, description="the customer's orders (any of their refs)"
    )
    number: str | None = Field(default=None, max_length=100)


def _order_out(row: ErpOrder) -> ErpOrderOut:
    known = {str(status) for status in OrderStatus}
    paid = {str(status) for status in PaymentStatus}
    return ErpOrderOut(
        id=row.id,
        number=row.number,
        customer_ref=row.customer_ref,
        contact_id=row.contact_id,
        ordered_at=row.ordered_at,
        status=OrderStatus(row.status) if row.status in known else OrderStatus.OTHER,
        payment_status=(
            PaymentStatus(row.payment_status)
            if row.payment_status in paid
            else PaymentStatus.UNKNOWN
        ),
        total=row.total,
        currency=row.currency,
        tracking_number=row.tracking_number,
        tracking_url=row.tracking_url,
        carrier=row.carrier,
        shipped_at=row.shipped_at,
        delivered_at=row.delivered_at,
        lines=[
            ErpOrderLineOut(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                total=line.total,
            )
            for line in row.lines
        ],
        updated_at=row.updated_at,
    )


async def _one_order(call: Call[Any, Any], order_id: int) -> ErpOrderOut:
    async with call.sessions() as session:
        row = await session.scalar(
            select(ErpOrder)
            .where(ErpOrder.id == order_id)
            .options(selectinload(ErpOrder.lines))
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return _order_out(row)


@routes.get(
    "/api/v1/erp/embedded/orders",
    summary="The embedded ERP's orders with their lines, newest first",
    roles=ADMINS,
    query=OrderQuery,
    response=Page[ErpOrderOut],
)
async def list_orders(call: Call[NoBody, OrderQuery]) -> Page[ErpOrderOut]:
    async with call.sessions() as session:
        query = select(ErpOrder).options(selectinload(ErpOrder.lines))
        if call.query.customer:
            query = query.where(await orders_of_customer(session, call.query.customer.strip()))
        if call.query.number:
            query = query.where(ErpOrder.number == call.query.number.strip())
        rows, cursor = await keyset_page(
            session,
            query,
            ErpOrder.ordered_at,
            ErpOrder.id,
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
        return Page[ErpOrderOut](items=[_order_out(row) for row in rows], next_cursor=cursor)


@routes.post(
    "/api/v1/erp/embedded/orders",
    summary="Add an order with its lines (409 if its number is taken)",
    roles=ADMINS,
    documented_body=OrderData,
    response=ErpOrderOut,
    status=201,
    errors=(400, 409, 413),
)
async def create_order(call: Call[NoBody, NoBody]) -> ErpOrderOut:
    data = validated(OrderData, await _raw_body(call))
    async with call.sessions() as session, session.begin():
        row, _ = await save_order(
            session,
            call.actor,
            data,
            create_only=True,
            default_region=call.settings.default_region,
        )
    return await _one_order(call, row.id)


@routes.patch(
    "/api/v1/erp/embedded/orders/{id}",
    summary="Change an order (lines sent replace its lines)",
    roles=ADMINS,
    documented_body=ErpOrderPatch,
    response=ErpOrderOut,
    errors=(400, 409, 413),
)
async def update_order(call: Call[NoBody, NoBody]) -> ErpOrderOut:
    changes = await _raw_body(call)
    async with call.sessions() as session, session.begin():
        row = await change_order(
            session,
            call.actor,
            call.path_int("id"),
            changes,
            default_region=call.settings.default_region,
        )
    return await _one_order(call, row.id)


@routes.delete(
    "/api/v1/erp/embedded/orders/{id}",
    summary="Remove an order and its lines (its invoices stay, without the order)",
    roles=ADMINS,
    status=204,
)
async def remove_order(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await delete_order(session, call.actor, call.path_int("id"))
    return web.Response(status=204)
