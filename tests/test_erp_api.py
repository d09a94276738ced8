"""The ERP admin API (web/routes_erp.py): the connection (secrets write-only, the embedded ERP
by default, a check), and the embedded ERP's products, stock and orders with their lines:
admins only, one message per field, 409 for a taken SKU or number, every change audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, Contact, ErpConnection, Identity, IdentityKind, Role
from tests.conftest import User, UserFactory


async def json_of(response: Any, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


@pytest.fixture
async def admin(make_user: UserFactory) -> User:
    return await make_user(Role.ADMIN)


async def test_only_admins(make_user: UserFactory) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    for path in (
        "/api/v1/erp/connection",
        "/api/v1/erp/embedded/products",
        "/api/v1/erp/embedded/orders",
    ):
        assert (await supervisor.get(path)).status == 403


async def test_the_connection_is_the_embedded_erp_until_set_and_secrets_are_write_only(
    admin: User, sessions: SessionFactory
) -> None:
    shown = await json_of(await admin.get("/api/v1/erp/connection"), 200)
    assert (shown["kind"], shown["configured"], shown["enabled"]) == ("embedded", False, True)
    assert "embedded" in {kind["name"] for kind in shown["kinds"]}
    checked = await json_of(await admin.post("/api/v1/erp/connection/check"), 200)
    assert checked["ok"] is True
    assert checked["message"].startswith("the embedded ERP answers")
    bad = await json_of(
        await admin.put(
            "/api/v1/erp/connection",
            json={"kind": "embedded", "settings": {"order_number_pattern": "("}},
        ),
        400,
    )
    assert list(bad["error"]["fields"]) == ["settings.order_number_pattern"]
    unknown = await json_of(await admin.put("/api/v1/erp/connection", json={"kind": "sap"}), 400)
    assert list(unknown["error"]["fields"]) == ["kind"]
    if "odoo" not in {kind["name"] for kind in shown["kinds"]}:
        return
    secret = "odoo-Secret-31415926"
    settings = {"url": "http://127.0.0.1:9", "database": "shop", "api_key": secret}
    put = await admin.put("/api/v1/erp/connection", json={"kind": "odoo", "settings": settings})
    stored = await json_of(put, 200)
    assert secret not in json.dumps(stored)
    assert stored["settings"]["api_key_set"] is True
    assert "api_key" not in stored["settings"]
    assert stored["secret_fields"] == ["api_key"]
    again = await json_of(await admin.get("/api/v1/erp/connection"), 200)
    assert secret not in json.dumps(again)
    async with sessions() as session:
        row = await session.get(ErpConnection, 1)
        audited = list(await session.scalars(select(AuditEntry)))
    assert row is not None
    assert secret not in json.dumps(row.settings)
    assert all(secret not in json.dumps(entry.details) for entry in audited)
    failed = await json_of(await admin.post("/api/v1/erp/connection/check"), 200)
    assert failed["ok"] is False
    assert secret not in failed["message"]


async def test_products_and_stock(admin: User, sessions: SessionFactory) -> None:
    chair = {"sku": "CHAIR-1", "name": "Desk chair", "price": "249.00", "currency": "eur"}
    made = await json_of(await admin.post("/api/v1/erp/embedded/products", json=chair), 201)
    assert (made["sku"], made["price"], made["currency"]) == ("CHAIR-1", "249.00", "EUR")
    taken = await json_of(await admin.post("/api/v1/erp/embedded/products", json=chair), 409)
    assert list(taken["error"]["fields"]) == ["sku"]
    bad = await admin.post(
        "/api/v1/erp/embedded/products",
        json={"sku": "X", "name": "", "price": "a lot", "colour": "red"},
    )
    assert (await json_of(bad, 400))["error"]["fields"] == {
        "name": "required",
        "price": "not a number",
        "colour": "not a field of this record",
    }
    await json_of(
        await admin.post(
            "/api/v1/erp/embedded/products", json={"sku": "LAMP-2", "name": "Desk lamp"}
        ),
        201,
    )
    page = await json_of(
        await admin.get("/api/v1/erp/embedded/products", params={"q": "LAMP"}), 200
    )
    assert [item["sku"] for item in page["items"]] == ["LAMP-2"]
    first = await json_of(
        await admin.get("/api/v1/erp/embedded/products", params={"limit": 1}), 200
    )
    assert [item["sku"] for item in first["items"]] == ["CHAIR-1"]
    rest = await admin.get("/api/v1/erp/embedded/products", params={"cursor": first["next_cursor"]})
    assert [item["sku"] for item in (await json_of(rest, 200))["items"]] == ["LAMP-2"]
    changed = await admin.patch(
        f"/api/v1/erp/embedded/products/{made['id']}", json={"price": "199"}
    )
    assert (await json_of(changed, 200))["price"] == "199.00"
    unpriced = await admin.patch(
        f"/api/v1/erp/embedded/products/{made['id']}", json={"currency": None}
    )
    assert (await json_of(unpriced, 400))["error"]["fields"] == {
        "currency": "give the price and its currency together"
    }
    level = {"sku": "CHAIR-1", "warehouse": "Hamburg", "on_hand": "12", "reserved": "2"}
    stock = await json_of(await admin.post("/api/v1/erp/embedded/stock", json=level), 200)
    assert (stock["warehouse"], stock["available"]) == ("Hamburg", "10.000")
    moved = await admin.patch(f"/api/v1/erp/embedded/stock/{stock['id']}", json={"reserved": "20"})
    assert (await json_of(moved, 200))["available"] == "0"
    listed = await json_of(
        await admin.get("/api/v1/erp/embedded/stock", params={"sku": "CHAIR-1"}), 200
    )
    assert [item["id"] for item in listed["items"]] == [stock["id"]]
    assert (await admin.delete(f"/api/v1/erp/embedded/stock/{stock['id']}")).status == 204
    assert (await admin.delete(f"/api/v1/erp/embedded/products/{made['id']}")).status == 204
    assert (await admin.delete(f"/api/v1/erp/embedded/products/{made['id']}")).status == 404
    async with sessions() as session:
        actions = set(await session.scalars(select(AuditEntry.action)))
    assert {
        "erp.product.create",
        "erp.product.update",
        "erp.product.delete",
        "erp.stock.set",
        "erp.stock.delete",
    } <= actions


async def test_orders_with_their_lines(admin: User, sessions: SessionFactory) -> None:
    async with sessions() as session, session.begin():
        contact = Contact(display_name="Max Müller")
        session.add(contact)
        await session.flush()
        session.add(
            Identity(contact_id=contact.id, kind=IdentityKind.PHONE, address="+4915123456789")
        )
    order = {
        "number": "10330",
        "customer": "+49 151 23456789",
        "ordered_at": "2026-03-01T10:00:00+01:00",
        "status": "processing",
        "currency": "EUR",
        "lines": [
            {"sku": "TBL-OAK", "name": "Oak coffee table", "quantity": 1, "unit_price": "349"},
            {"name": "Cushion", "quantity": "2", "unit_price": "19.90"},
        ],
    }
    made = await json_of(await admin.post("/api/v1/erp/embedded/orders", json=order), 201)
    assert (made["customer_ref"], made["contact_id"]) == (f"contact:{contact.id}", contact.id)
    assert (made["total"], made["ordered_at"]) == ("388.80", "2026-03-01T09:00:00Z")
    assert [line["total"] for line in made["lines"]] == ["349.00", "39.80"]
    assert (await admin.post("/api/v1/erp/embedded/orders", json=order)).status == 409
    bad = {**order, "number": "10331", "lines": [{"name": "Chair", "quantity": "x"}]}
    fields = (await json_of(await admin.post("/api/v1/erp/embedded/orders", json=bad), 400))[
        "error"
    ]
    assert fields["fields"] == {"lines.0.quantity": "not a number"}
    mine = await admin.get(
        "/api/v1/erp/embedded/orders", params={"customer": f"contact:{contact.id}"}
    )
    assert [item["number"] for item in (await json_of(mine, 200))["items"]] == ["10330"]
    by_number = await admin.get("/api/v1/erp/embedded/orders", params={"number": "10330"})
    assert len((await json_of(by_number, 200))["items"]) == 1
    shipped = await admin.patch(
        f"/api/v1/erp/embedded/orders/{made['id']}",
        json={
            "status": "shipped",
            "tracking_url": "https://track.example/1",
            "lines": [{"name": "Oak coffee table", "quantity": 1, "unit_price": "349"}],
        },
    )
    after = await json_of(shipped, 200)
    assert (after["status"], after["total"], len(after["lines"])) == ("shipped", "349.00", 1)
    assert (after["customer_ref"], after["contact_id"]) == (f"contact:{contact.id}", contact.id)
    script = await admin.patch(
        f"/api/v1/erp/embedded/orders/{made['id']}", json={"tracking_url": "javascript:alert(1)"}
    )
    assert list((await json_of(script, 400))["error"]["fields"]) == ["tracking_url"]
    assert (await admin.delete(f"/api/v1/erp/embedded/orders/{made['id']}")).status == 204
    empty = await admin.get("/api/v1/erp/embedded/orders", params={"number": "10330"})
    assert (await json_of(empty, 200))["items"] == []
