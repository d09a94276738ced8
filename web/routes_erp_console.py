"""The ERP in the console: a contact's customer, orders and invoices; an order opened; stock
of a product; product search; how order numbers look (to link them in the timeline).

Every answer says how old it is (`as_of`) and whether it is the last known one because the
ERP cannot be asked now (`stale`). The contact's card never fails because of the ERP: with
nothing cached and the ERP down it answers `error` and empty lists; the other routes answer
503 then. Contacts are no secret (core/visibility.py), and neither are a customer's orders
to the operators who serve them; integration tokens get none of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from core.clock import utcnow
from core.errors import NotFound, Unavailable
from core.models import Contact
from erp_bridge.base import ErpAdapter, ErpError
from erp_bridge.enricher import RECENT_ORDERS, query_for_contact
from erp_bridge.models import Customer, Invoice, Order, OrderSummary, Product, Stock
from erp_bridge.patterns import pattern_of
from erp_bridge.registry import kinds
from erp_bridge.service import ErpService
from web.api import ApiRoutes, Call, NoBody
from web.keys import ERP

routes = ApiRoutes(tag="erp")

Number = Annotated[str, Field(min_length=1, max_length=100)]
DEFAULT_PATTERN = r"\b\d{5,}\b"


class ErpOut(BaseModel):
    kind: str
    label: str


class CardQuery(BaseModel):
    fresh: bool = Field(False, description="ask the ERP now rather than answer from the cache")


class CustomerErpOut(BaseModel):
    customer: Customer | None
    orders: list[OrderSummary]
    invoices: list[Invoice]
    as_of: datetime
    stale: bool
    error: str | None
    erp: ErpOut | None


class OrderOut(BaseModel):
    order: Order
    as_of: datetime
    stale: bool


class StockQuery(BaseModel):
    sku: Number


class StockOut(BaseModel):
    stock: Stock | None
    as_of: datetime
    stale: bool


class ProductQuery(BaseModel):
    q: Annotated[str, Field(min_length=1, max_length=100)]
    limit: int = Field(10, ge=1, le=50)


class ProductsOut(BaseModel):
    products: list[Product]
    as_of: datetime
    stale: bool


class ConsoleSettingsOut(BaseModel):
    kind: str | None
    label: str | None
    order_number_pattern: str = Field(
        description="how customers write order numbers (a regular expression, no flags)"
    )


def _service(call: Call[Any, Any]) -> ErpService:
    return call.request.app[ERP]


async def _adapter(call: Call[Any, Any]) -> ErpAdapter:
    service = _service(call)
    adapter = await service.adapter()
    if adapter is None:
        raise Unavailable(f"no ERP: {service.problem or 'none is configured'}")
    return adapter


def _erp_of(adapter: ErpAdapter | None) -> ErpOut | None:
    if adapter is None:
        return None
    kind = kinds().get(adapter.kind)
    return ErpOut(kind=adapter.kind, label=kind.label if kind is not None else adapter.kind)


@routes.get(
    "/api/v1/contacts/{id}/erp",
    summary="The contact's customer in the ERP, their recent orders and invoices",
    query=CardQuery,
    response=CustomerErpOut,
)
async def contact_erp(call: Call[NoBody, CardQuery]) -> CustomerErpOut:
    contact_id = call.path_int("id")
    async with call.sessions() as session:
        if await session.get(Contact, contact_id) is None:
            raise NotFound(f"no contact {contact_id}")
        query = await query_for_contact(session, contact_id)
    service = _service(call)
    adapter = await service.adapter()
    if adapter is None:
        return CustomerErpOut(
            customer=None,
            orders=[],
            invoices=[],
            as_of=utcnow(),
            stale=False,
            error=f"no ERP: {service.problem or 'none is configured'}",
            erp=None,
        )
    try:
        fresh = call.query.fresh
        customer = await adapter.find_customer(query, fresh=fresh)
        orders: list[OrderSummary] = []
        invoices: list[Invoice] = []
        as_of, stale = customer.as_of, customer.stale
        if customer.value is not None:
            listed = await adapter.list_orders(customer.value.ref, RECENT_ORDERS, fresh=fresh)
            billed = await adapter.list_invoices(customer.value.ref, fresh=fresh)
            orders, invoices = listed.value, billed.value
            as_of = min(as_of, listed.as_of, billed.as_of)
            stale = stale or listed.stale or billed.stale
    except ErpError as exc:
        return CustomerErpOut(
            customer=None,
            orders=[],
            invoices=[],
            as_of=utcnow(),
            stale=False,
            error=str(exc),
            erp=_erp_of(adapter),
        )
    return CustomerErpOut(
        customer=customer.value,
        orders=orders,
        invoices=invoices,
        as_of=as_of,
        stale=stale,
        error=None,
        erp=_erp_of(adapter),
    )


@routes.get(
    "/api/v1/erp/orders/{number}",
    summary="One order by its number, with lines, shipments and invoices",
    response=OrderOut,
    errors=(503,),
)
async def order(call: Call[NoBody, NoBody]) -> OrderOut:
    number = call.request.match_info["number"].strip()
    if not 0 < len(number) <= 100:
        raise NotFound("no such order")
    adapter = await _adapter(call)
    try:
        found = await adapter.get_order(number)
    except ErpError as exc:
        raise Unavailable(str(exc)) from None
    if found.value is None:
        raise NotFound(f"the ERP has no order {number}")
    return OrderOut(order=found.value, as_of=found.as_of, stale=found.stale)


@routes.get(
    "/api/v1/erp/stock",
    summary="A product's stock per warehouse",
    query=StockQuery,
    response=StockOut,
    errors=(503,),
)
async def stock(call: Call[NoBody, StockQuery]) -> StockOut:
    adapter = await _adapter(call)
    try:
        found = await adapter.stock(call.query.sku.strip())
    except ErpError as exc:
        raise Unavailable(str(exc)) from None
    return StockOut(stock=found.value, as_of=found.as_of, stale=found.stale)


@routes.get(
    "/api/v1/erp/products",
    summary="Products whose name or SKU holds the text",
    query=ProductQuery,
    response=ProductsOut,
    errors=(503,),
)
async def products(call: Call[NoBody, ProductQuery]) -> ProductsOut:
    adapter = await _adapter(call)
    try:
        found = await adapter.search_products(call.query.q, call.query.limit)
    except ErpError as exc:
        raise Unavailable(str(exc)) from None
    return ProductsOut(products=found.value, as_of=found.as_of, stale=found.stale)


@routes.get(
    "/api/v1/erp/settings-for-console",
    summary="Which ERP is connected, and how its order numbers look",
    response=ConsoleSettingsOut,
)
async def console_settings(call: Call[NoBody, NoBody]) -> ConsoleSettingsOut:
    adapter = await _service(call).adapter()
    erp = _erp_of(adapter)
    return ConsoleSettingsOut(
        kind=erp.kind if erp else None,
        label=erp.label if erp else None,
        order_number_pattern=pattern_of(adapter, DEFAULT_PATTERN),
    )
