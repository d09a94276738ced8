"""A company's tax id, kept on its legal entity by a supervisor (the accounts API), reaches the
ERP: `query_for_contact` sends it after the contact's own addresses, and the ERP adapters ask
for it (Odoo's `vat`, ERPNext's `tax_id`): the stand-ins' requests are asserted. The contact
writes from an address the ERP does not know, so only the tax id can find the customer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role
from erp_bridge.base import ErpContext
from erp_bridge.enricher import query_for_contact
from erp_bridge.erpnext import KIND as ERPNEXT
from erp_bridge.erpnext import ErpNextSettings
from erp_bridge.models import CustomerQuery
from erp_bridge.odoo import OdooErp, OdooSettings
from tests.conftest import UserFactory
from tests.erp_standins import erpnext as erpnext_standin
from tests.erp_standins.odoo import API_KEY, DATABASE, ZED, OdooStandIn, demo

BUYER = "buyer@zed.example"  # known to no ERP


@pytest.fixture
async def odoo() -> AsyncIterator[OdooStandIn]:
    standin = demo(OdooStandIn(19))
    await standin.start()
    yield standin
    await standin.close()
    assert standin.violations == []


@pytest.fixture
async def erpnext() -> AsyncIterator[erpnext_standin.ErpNextStandIn]:
    site = erpnext_standin.ErpNextStandIn()
    erpnext_standin.seed(site)
    site.add(
        "Customer",
        customer_name="Zed Noise SARL",
        customer_group="Commercial",
        tax_id="FR12345678901",
    )
    await site.start()
    yield site
    await site.close()


async def buyer_of_zed_noise(make_user: UserFactory, sessions: SessionFactory) -> CustomerQuery:
    """A supervisor records Zed Noise's VAT number (as printed on a letter) on its legal
    entity and puts the buyer who wrote in on that account; the ERP query for the buyer."""
    lena = await make_user(Role.SUPERVISOR)
    account = await (await lena.post("/api/v1/accounts", json={"name": "Zed Noise"})).json()
    entity = await lena.post(
        f"/api/v1/accounts/{account['id']}/legal-entities",
        json={"name": "Zed Noise SARL", "tax_id": "FR 12 345 678 901"},
    )
    assert entity.status == 201, await entity.text()
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id="zed-1",
                addresses=[Address(IdentityKind.EMAIL, BUYER)],
                text="Has our order shipped?",
            ),
        )
    joined = await lena.patch(
        f"/api/v1/contacts/{arrived.contact_id}", json={"account_id": account["id"]}
    )
    assert joined.status == 200, await joined.text()
    async with sessions() as session:
        query = await query_for_contact(session, arrived.contact_id)
    assert query == CustomerQuery(emails=(BUYER,), tax_ids=("FR12345678901",))
    return query


async def test_odoo_is_asked_for_the_vat_number_and_finds_the_company(
    make_user: UserFactory, sessions: SessionFactory, odoo: OdooStandIn
) -> None:
    query = await buyer_of_zed_noise(make_user, sessions)
    erp = OdooErp(OdooSettings(url=odoo.url, database=DATABASE, protocol="json2", api_key=API_KEY))
    try:
        found = (await erp.find_customer(query)).value
    finally:
        await erp.close()
    assert found is not None
    assert (found.ref, found.name, found.tax_id) == (str(ZED), "Zed Noise", "FR12345678901")
    domains = [call.params["domain"] for call in odoo.object_calls("res.partner", "search_read")]
    assert [["vat", "=ilike", "FR12345678901"]] in domains


async def test_erpnext_is_asked_for_the_tax_id_and_finds_the_customer(
    make_user: UserFactory,
    sessions: SessionFactory,
    erpnext: erpnext_standin.ErpNextStandIn,
) -> None:
    query = await buyer_of_zed_noise(make_user, sessions)
    settings = ErpNextSettings(
        url=erpnext.url, api_key=erpnext_standin.API_KEY, api_secret=erpnext_standin.API_SECRET
    )
    erp = ERPNEXT.build(settings, ErpContext())
    try:
        found = (await erp.find_customer(query)).value
    finally:
        await erp.close()
    assert found is not None
    assert (found.ref, found.tax_id, found.tier) == (
        "Zed Noise SARL",
        "FR12345678901",
        "Commercial",
    )
    filters = [asked.json("filters") for asked in erpnext.lists("Customer")]
    assert [["tax_id", "in", ["FR12345678901"]], ["disabled", "=", 0]] in filters
