"""Accounts and their legal entities through the API (web/routes_accounts.py over
core/accounts.py): supervisors add and change them, a tax id is kept as ERPs compare it, an
ERP reference names one customer, every change is audited; operators may not."""

from __future__ import annotations

from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, Contact, Role
from tests.conftest import UserFactory


async def test_a_supervisor_keeps_an_accounts_legal_entities_with_erp_ref_and_tax_id(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    lena = await make_user(Role.SUPERVISOR)
    created = await lena.post("/api/v1/accounts", json={"name": " Nordwind Logistics "})
    assert created.status == 201, await created.text()
    account = await created.json()
    assert (account["name"], account["legal_entities"]) == ("Nordwind Logistics", [])
    added = await lena.post(
        f"/api/v1/accounts/{account['id']}/legal-entities",
        json={"name": "Nordwind GmbH", "erp_ref": " C-10042 ", "tax_id": "de 123.456-789"},
    )
    assert added.status == 201, await added.text()
    entity = await added.json()
    assert (entity["erp_ref"], entity["tax_id"]) == ("C-10042", "DE123456789")
    changed = await lena.patch(
        f"/api/v1/legal-entities/{entity['id']}", json={"tax_id": "DE 987 654 321"}
    )
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["tax_id"] == "DE987654321"
    shown = await (await lena.get(f"/api/v1/accounts/{account['id']}")).json()
    assert [(e["name"], e["erp_ref"], e["tax_id"]) for e in shown["legal_entities"]] == [
        ("Nordwind GmbH", "C-10042", "DE987654321")
    ]
    cleared = await lena.patch(f"/api/v1/legal-entities/{entity['id']}", json={"tax_id": None})
    assert (await cleared.json())["tax_id"] is None
    async with sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert [a for a in actions if a.startswith(("account.", "legal_entity."))] == [
        "account.create",
        "legal_entity.create",
        "legal_entity.update",
        "legal_entity.update",
    ]


async def test_bad_values_are_named_and_a_taken_erp_ref_is_a_conflict(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    lena = await make_user(Role.SUPERVISOR)
    account = await (await lena.post("/api/v1/accounts", json={"name": "Acme"})).json()
    path = f"/api/v1/accounts/{account['id']}/legal-entities"
    first = await (await lena.post(path, json={"name": "Acme GmbH", "erp_ref": "C-1"})).json()
    taken = await lena.post(path, json={"name": "Acme AG", "erp_ref": "C-1"})
    assert taken.status == 409
    assert list((await taken.json())["error"]["fields"]) == ["erp_ref"]
    bad = await lena.post(path, json={"name": "Acme AG", "tax_id": "DE-123?"})
    assert bad.status == 400
    assert list((await bad.json())["error"]["fields"]) == ["tax_id"]
    nameless = await lena.patch(f"/api/v1/legal-entities/{first['id']}", json={"name": None})
    assert nameless.status == 400
    # A contact's ERP reference names a customer too: no legal entity may take it.
    async with sessions() as session, session.begin():
        session.add(Contact(display_name="Kim Lee", erp_ref="K-7"))
    person = await lena.patch(f"/api/v1/legal-entities/{first['id']}", json={"erp_ref": "K-7"})
    assert person.status == 409
    assert "contact" in (await person.json())["error"]["message"]
    unknown = await lena.post("/api/v1/accounts/999999/legal-entities", json={"name": "X"})
    assert unknown.status == 404


async def test_operators_may_not_change_accounts(make_user: UserFactory) -> None:
    anna = await make_user(Role.OPERATOR)
    assert (await anna.post("/api/v1/accounts", json={"name": "Acme"})).status == 403
    assert (await anna.patch("/api/v1/legal-entities/1", json={"tax_id": "DE1"})).status == 403
