"""Order numbers in the search box (erp_bridge/order_search.py, `web.keys.ORDER_SEARCH`) over
the embedded ERP: a number finds its order and whose it is; other words find no order; an
ERP that is down or slow finds none, and the search answers the rest."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from core.audit import CLI
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role, utcnow
from erp_bridge.base import ErpUnavailable
from erp_bridge.embedded_data import OrderData, save_order, set_contact_erp_ref
from erp_bridge.order_search import ErpOrderSearch, order_number
from tests.conftest import UserFactory
from web.keys import ERP, ORDER_SEARCH

pytestmark = pytest.mark.both_databases  # tests/conftest.py

# The database tests run on SQLite only (the ERP lookup is the same on every backend).

# The suite's clock (it may run years from today): the orders are dated from it.
NOW = utcnow()


async def customer(sessions: SessionFactory, email: str, name: str, text: str) -> int:
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id=f"{email}-1",
                addresses=[Address(IdentityKind.EMAIL, email)],
                display_name=name,
                text=text,
            ),
        )
    return arrived.contact_id


async def order(sessions: SessionFactory, number: str, customer: str, days_ago: int) -> None:
    async with sessions() as session, session.begin():
        await save_order(
            session,
            CLI,
            OrderData.model_validate(
                {
                    "number": number,
                    "customer": customer,
                    "ordered_at": (NOW - timedelta(days=days_ago)).isoformat(),
                    "status": "shipped",
                    "currency": "EUR",
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


async def max_with_an_order(sessions: SessionFactory) -> int:
    """Max, who asked by email where order 10330 is, and that order."""
    contact_id = await customer(
        sessions, "max.mueller@example.de", "Max Müller", "Where is my order 10330?"
    )
    await order(sessions, "10330", "max.mueller@example.de", 30)
    return contact_id


@pytest.mark.sqlite_only
async def test_an_order_number_finds_the_order_and_whose_it_is(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    max_id = await max_with_an_order(sessions)
    # A customer the CRM knows by their number in the ERP: the order names that number.
    jo_id = await customer(sessions, "jo@example.org", "Jo Solo", "Hello")
    async with sessions() as session, session.begin():
        await set_contact_erp_ref(session, CLI, jo_id, "C-77")
    await order(sessions, "20417", "C-77", 3)
    sam = await make_user(Role.SUPERVISOR)  # sees every conversation

    found = await (await sam.get("/api/v1/search", params={"q": "10330"})).json()
    (hit,) = found["orders"]
    assert hit["number"] == "10330"
    assert hit["contact_id"] == max_id
    assert "shipped" in hit["summary"]
    assert "398.00 EUR" in hit["summary"]
    assert (NOW - timedelta(days=30)).date().isoformat() in hit["summary"]
    # The rest of the search answers as before: Max's message names the number.
    assert [item["conversation"]["contact_id"] for item in found["conversations"]["items"]] == [
        max_id
    ]

    for query in (" 20417 ", "#20417"):
        found = await (await sam.get("/api/v1/search", params={"q": query})).json()
        assert [(o["number"], o["contact_id"]) for o in found["orders"]] == [("20417", jo_id)]


@pytest.mark.sqlite_only
async def test_words_and_unknown_numbers_find_no_order(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    max_id = await max_with_an_order(sessions)
    sam = await make_user(Role.SUPERVISOR)  # sees every conversation
    for query in ("Max", "order 10330", "103", "99999"):
        found = await (await sam.get("/api/v1/search", params={"q": query})).json()
        assert found["orders"] == [], query
    found = await (await sam.get("/api/v1/search", params={"q": "Max"})).json()
    assert [item["id"] for item in found["contacts"]["items"]] == [max_id]
    # One kind of result asked for: no order lookup.
    found = await (
        await sam.get("/api/v1/search", params={"q": "10330", "kind": "conversations"})
    ).json()
    assert found["orders"] == []


@pytest.mark.sqlite_only
async def test_a_down_or_slow_erp_finds_no_orders_and_the_search_answers_the_rest(
    app: web.Application, make_user: UserFactory, sessions: SessionFactory
) -> None:
    max_id = await max_with_an_order(sessions)
    sam = await make_user(Role.SUPERVISOR)  # sees every conversation
    adapter = await app[ERP].adapter()
    assert adapter is not None
    searcher = app[ORDER_SEARCH]
    assert isinstance(searcher, ErpOrderSearch)
    searcher.timeout = 0.2

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ErpUnavailable("connection refused")

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    for broken in (down, slow):
        adapter.do_get_order = broken  # type: ignore[method-assign]
        adapter.cache.clear()
        started = time.monotonic()
        response = await sam.get("/api/v1/search", params={"q": "10330"})
        assert response.status == 200
        found = await response.json()
        assert found["orders"] == []
        assert [item["conversation"]["contact_id"] for item in found["conversations"]["items"]] == [
            max_id
        ]
        assert time.monotonic() - started < 10  # bounded by the search's timeout, not the ERP's

    # No ERP at all (a connection that cannot be built): the same.
    async def none() -> None:
        return None

    app[ERP].adapter = none  # type: ignore[method-assign]
    found = await (await sam.get("/api/v1/search", params={"q": "10330"})).json()
    assert found["orders"] == []
    assert found["conversations"]["items"]


def test_what_looks_like_an_order_number() -> None:
    bare = object()  # an ERP without a pattern: 4 or more digits
    assert order_number(bare, "1234") == "1234"
    assert order_number(bare, " #10330 ") == "10330"
    assert order_number(bare, "123") is None
    assert order_number(bare, "12a4") is None
    assert order_number(bare, "") is None
    odoo = SimpleNamespace(settings=SimpleNamespace(order_number_pattern=r"S\d{5}"))
    assert order_number(odoo, "s00042") == "s00042"  # as the adapters read it: any case
    assert order_number(odoo, "S00042") == "S00042"
    assert order_number(odoo, "10330") is None
    assert order_number(odoo, "S00042 S00043") is None
    erpnext = SimpleNamespace(settings=SimpleNamespace(order_number_pattern=r"SAL-ORD-\d{4}-\d{5}"))
    assert order_number(erpnext, "SAL-ORD-2026-00001") == "SAL-ORD-2026-00001"
    assert order_number(erpnext, "SAL-ORD-26-1") is None
    # A pattern RE2 cannot read (no ERP's settings take one; an old stored one) finds none.
    lookahead = SimpleNamespace(settings=SimpleNamespace(order_number_pattern=r"(?=\d)\d{5}"))
    assert order_number(lookahead, "10330") is None
