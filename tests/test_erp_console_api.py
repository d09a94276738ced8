"""The ERP in the console (web/routes_erp_console.py) and in routing (erp_bridge/enricher.py),
over the embedded ERP: a customer's orders and invoices, an order opened, stock, products,
answers that say how old they are, and the facts queue rules can match."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from core.audit import CLI
from core.db import SessionFactory
from core.enrichment import WorkFacts
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role, utcnow
from erp_bridge.base import ErpUnavailable
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
from erp_bridge.enricher import ErpEnricher
from tests.conftest import UserFactory
from web.keys import ERP

EMAIL = "max.mueller@example.de"
# The suite's clock (it may run years from today): the orders are dated from it.
NOW = utcnow()
AN_HOUR_AGO = NOW - timedelta(hours=1)


async def customer_with_orders(sessions: SessionFactory) -> int:
    """Max, who wrote by email, with two orders (one shipped), an overdue invoice, and a
    chair in two warehouses."""
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id="max-1",
                addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                display_name="Max Müller",
                text="Where is my order 10330?",
            ),
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
            ("10301", NOW - timedelta(days=60), "delivered", None),
            ("10330", NOW - timedelta(days=30), "shipped", "https://track.example/10330"),
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
                        "tracking_number": f"T{number}" if tracking else None,
                        "tracking_url": tracking,
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
                    "order_number": "10330",
                    "issued_at": (NOW - timedelta(days=30)).date().isoformat(),
                    "due_at": (NOW - timedelta(days=15)).date().isoformat(),
                    "total": "398.00",
                    "currency": "EUR",
                }
            ),
        )
    return arrived.contact_id


async def test_the_card_shows_the_customers_orders_and_invoices_from_the_erp(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    contact_id = await customer_with_orders(sessions)
    anna = await make_user(Role.OPERATOR)
    card = await (await anna.get(f"/api/v1/contacts/{contact_id}/erp")).json()
    assert card["error"] is None
    assert card["stale"] is False
    assert card["erp"]["kind"] == "embedded"
    assert card["customer"]["name"] == "Max Müller"
    assert [order["number"] for order in card["orders"]] == ["10330", "10301"]  # newest first
    assert card["orders"][0]["status"] == "shipped"
    assert card["orders"][0]["tracking_url"] == "https://track.example/10330"
    assert card["orders"][0]["total"] == {"amount": "398.00", "currency": "EUR"}
    assert [
        (invoice["number"], invoice["amount_due"]["amount"]) for invoice in card["invoices"]
    ] == [("INV-1", "398.00")]

    opened = await (await anna.get("/api/v1/erp/orders/10330")).json()
    assert [line["name"] for line in opened["order"]["lines"]] == ["Desk chair"]
    assert [invoice["number"] for invoice in opened["order"]["invoices"]] == ["INV-1"]
    assert (await anna.get("/api/v1/erp/orders/99999")).status == 404

    stock = await (await anna.get("/api/v1/erp/stock", params={"sku": "CHAIR-1"})).json()
    levels = {level["warehouse"]: level["available"] for level in stock["stock"]["levels"]}
    assert levels == {"Hamburg": "5.000", "Berlin": "3.000"} or levels == {
        "Hamburg": "5",
        "Berlin": "3",
    }
    found = await (await anna.get("/api/v1/erp/products", params={"q": "chair"})).json()
    assert [product["sku"] for product in found["products"]] == ["CHAIR-1"]
    settings = await (await anna.get("/api/v1/erp/settings-for-console")).json()
    assert settings["kind"] == "embedded"
    assert settings["order_number_pattern"]

    # Nobody in the ERP: an empty card, not an error.
    stranger = await (await anna.get("/api/v1/contacts/999999/erp")).json()
    assert stranger["error"]["code"] == "not_found"


async def test_a_down_erp_shows_the_last_answers_as_of_then_and_errors_without_them(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    contact_id = await customer_with_orders(sessions)
    anna = await make_user(Role.OPERATOR)
    path = f"/api/v1/contacts/{contact_id}/erp"
    fresh = await (await anna.get(path)).json()
    adapter = await app[ERP].adapter()
    assert adapter is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ErpUnavailable("connection refused")

    # The ERP goes down and the cache ages past its TTL: the card shows the last answers.
    adapter.do_find_customer = down  # type: ignore[method-assign]
    adapter.do_list_orders = down  # type: ignore[method-assign]
    adapter.do_list_invoices = down  # type: ignore[method-assign]
    adapter.do_stock = down  # type: ignore[method-assign]
    for key in list(adapter.cache._entries):  # type: ignore[attr-defined]
        entry = adapter.cache.get(key)
        assert entry is not None
        adapter.cache.put(key, type(entry)(entry.value, AN_HOUR_AGO))
    stale = await (await anna.get(path)).json()
    assert stale["stale"] is True
    assert datetime.fromisoformat(stale["as_of"]) == AN_HOUR_AGO
    assert [order["number"] for order in stale["orders"]] == [
        order["number"] for order in fresh["orders"]
    ]
    # Nothing cached for this product: 503 with the reason; the card itself never fails.
    missing = await anna.get("/api/v1/erp/stock", params={"sku": "DESK-9"})
    assert missing.status == 503
    assert "connection refused" in (await missing.json())["error"]["message"]
    health = await (await anna.get("/healthz")).json()
    assert health["status"] in ("ok", "degraded")


async def test_routing_learns_the_customers_open_orders_and_overdue_invoices(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    contact_id = await customer_with_orders(sessions)
    await make_user(Role.OPERATOR)  # starts the app
    service = app[ERP]
    await service.adapter()
    enricher = ErpEnricher(sessions, service.adapter, lambda: NOW.date())
    facts = await enricher.enrich(WorkFacts(channel="email", contact_id=contact_id))
    assert facts == {
        "erp.customer": True,
        "erp.turnover": 796.0,  # both orders, within the last 12 months
        "erp.open_orders": 1,
        "erp.open_order_value": float(Decimal("398.00")),
        "erp.overdue_invoices": 1,
        "erp.amount_overdue": 398.0,
    }
    nobody = await enricher.enrich(WorkFacts(channel="email", contact_id=None))
    assert nobody == {}
