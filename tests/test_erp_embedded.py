"""The embedded ERP (erp_bridge/embedded.py) answers from omnicrm's own tables through the
adapter's public methods: customers by ERP reference, then email, then phone; orders newest
first; an order with its lines, shipment and invoices; stock per warehouse; product search.
Its data is written through erp_bridge/embedded_data.py (validated, idempotent, audited).
The configured ERP (erp_bridge/config.py) keeps its secrets encrypted and never shows them,
and the embedded ERP is the adapter when nothing is configured."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import LegalEntityChanges, update_legal_entity
from core.audit import CLI
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.errors import Conflict, InvalidInput
from core.models import (
    Account,
    AuditEntry,
    Contact,
    ErpConnection,
    ErpOrder,
    Identity,
    IdentityKind,
    LegalEntity,
)
from erp_bridge import config, embedded
from erp_bridge.base import ErpContext, ErpKind, ErpUnavailable
from erp_bridge.embedded import EmbeddedErp
from erp_bridge.embedded_data import (
    InvoiceData,
    OrderData,
    ProductData,
    StockData,
    save_invoice,
    save_order,
    save_product,
    save_stock,
    set_contact_erp_ref,
    validated,
)
from erp_bridge.models import CustomerQuery, InvoiceStatus, OrderStatus, PaymentStatus

pytestmark = pytest.mark.both_databases  # tests/conftest.py

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CIPHER = CredentialCipher("erp-test-key")
API_KEY = "fake-Secret-4711"


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


async def person(
    session: AsyncSession, name: str, email: str | None = None, phone: str | None = None
) -> Contact:
    contact = Contact(display_name=name)
    session.add(contact)
    await session.flush()
    if email:
        session.add(Identity(contact_id=contact.id, kind=IdentityKind.EMAIL, address=email))
    if phone:
        session.add(Identity(contact_id=contact.id, kind=IdentityKind.PHONE, address=phone))
    await session.flush()
    return contact


async def company(session: AsyncSession, name: str, erp_ref: str) -> None:
    account = Account(name=name)
    session.add(account)
    await session.flush()
    session.add(LegalEntity(account_id=account.id, name=name, erp_ref=erp_ref))
    await session.flush()


def order(number: str, customer: str, days_ago: float, **fields: Any) -> OrderData:
    return validated(
        OrderData,
        {
            "number": number,
            "customer": customer,
            "ordered_at": at(days_ago),
            "status": "confirmed",
            "currency": "EUR",
            "lines": [
                {"sku": "CHAIR-1", "name": "Desk chair", "quantity": "1", "unit_price": "10"}
            ],
            **fields,
        },
    )


@pytest.fixture
def erp(sessions: SessionFactory) -> EmbeddedErp:
    return EmbeddedErp(sessions, clock=lambda: NOW)


@pytest.fixture
async def shop(sessions: SessionFactory) -> dict[str, int]:
    """Kim (email and phone), Lee (email), Nordwind (a legal entity), and their orders."""
    async with sessions() as session, session.begin():
        kim = await person(session, "Kim Lee", "kim@example.com", "+4915112345678")
        lee = await person(session, "Lee Park", "lee@example.org")
        await company(session, "Nordwind Logistics GmbH", "C-10042")
        for number, customer, days in (
            ("10001", "kim@example.com", 30),
            ("10003", "+49 151 12345678", 2),
            ("10002", f"contact:{kim.id}", 10),
            ("20001", "lee@example.org", 5),
            ("30001", "C-10042", 50),
        ):
            await save_order(session, CLI, order(number, customer, days))
    return {"kim": kim.id, "lee": lee.id}


# --- customers ------------------------------------------------------------------------------


async def test_a_customer_is_found_by_erp_ref_then_email_then_phone(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    async with sessions() as session, session.begin():
        await set_contact_erp_ref(session, CLI, shop["kim"], "K-100")
    by_ref = (await erp.find_customer(CustomerQuery(erp_refs=("K-100",)))).value
    assert by_ref is not None
    assert (by_ref.ref, by_ref.name, by_ref.email, by_ref.phone) == (
        "K-100",
        "Kim Lee",
        "kim@example.com",
        "+4915112345678",
    )
    # Three orders of 10 EUR within the year.
    assert by_ref.turnover is not None
    assert (by_ref.turnover.amount, by_ref.turnover.currency) == (Decimal("30.00"), "EUR")
    # The reference first: Lee's email does not win over Kim's reference.
    first = await erp.find_customer(CustomerQuery(erp_refs=("K-100",), emails=("lee@example.org",)))
    assert first.value is not None
    assert first.value.ref == "K-100"
    # An unknown reference, then an email (normalized), then a phone number.
    by_email = await erp.find_customer(
        CustomerQuery(erp_refs=("nobody",), emails=(" LEE@Example.org",))
    )
    assert by_email.value is not None
    assert (by_email.value.ref, by_email.value.name) == (f"contact:{shop['lee']}", "Lee Park")
    by_phone = await erp.find_customer(
        CustomerQuery(emails=("unknown@example.com",), phones=("+49 151 12345678",))
    )
    assert by_phone.value is not None
    assert by_phone.value.ref == "K-100"
    entity = (await erp.find_customer(CustomerQuery(erp_refs=("C-10042",)))).value
    assert entity is not None
    assert (entity.ref, entity.name) == ("C-10042", "Nordwind Logistics GmbH")
    none = await erp.find_customer(CustomerQuery(emails=("nobody@example.com",), phones=("x",)))
    assert none.value is None


async def test_a_company_is_found_by_its_tax_id_however_it_is_written(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    """Nordwind's VAT number, typed with spaces and dots by a supervisor, finds Nordwind's
    customer however the query writes it; a legal entity with no ERP reference has no orders
    here, so its tax id finds nobody."""
    async with sessions() as session, session.begin():
        nordwind = await session.scalar(select(LegalEntity).where(LegalEntity.erp_ref == "C-10042"))
        assert nordwind is not None
        await update_legal_entity(
            session, CLI, nordwind.id, LegalEntityChanges(tax_id="de 123.456.789")
        )
        session.add(LegalEntity(account_id=nordwind.account_id, name="Nordwind BV", tax_id="NL001"))
    found = (await erp.find_customer(CustomerQuery(tax_ids=("DE-123 456 789",)))).value
    assert found is not None
    assert (found.ref, found.name, found.tax_id) == (
        "C-10042",
        "Nordwind Logistics GmbH",
        "DE123456789",
    )
    assert found.turnover is not None
    assert (found.turnover.amount, found.turnover.currency) == (Decimal("10.00"), "EUR")
    assert [o.number for o in (await erp.list_orders(found.ref)).value] == ["30001"]
    # Addresses first: Kim's email wins over Nordwind's tax id.
    kim = await erp.find_customer(
        CustomerQuery(emails=("kim@example.com",), tax_ids=("DE123456789",))
    )
    assert kim.value is not None
    assert kim.value.name == "Kim Lee"
    for nobody in ("NL001", "DE999999999"):
        assert (await erp.find_customer(CustomerQuery(tax_ids=(nobody,)))).value is None


async def test_merged_and_erased_contacts(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    async with sessions() as session, session.begin():
        lee = await session.get(Contact, shop["lee"])
        assert lee is not None
        lee.merged_into_id = shop["kim"]
    # A merged contact's reference finds the survivor, with the merged one's orders.
    found = (await erp.find_customer(CustomerQuery(erp_refs=(f"contact:{shop['lee']}",)))).value
    assert found is not None
    assert found.ref == f"contact:{shop['kim']}"
    orders = (await erp.list_orders(f"contact:{shop['kim']}")).value
    assert [o.number for o in orders] == ["10003", "20001", "10002", "10001"]
    async with sessions() as session, session.begin():
        kim = await session.get(Contact, shop["kim"])
        assert kim is not None
        kim.erased_at = NOW
    erp.cache.clear()
    erased = await erp.find_customer(CustomerQuery(emails=("kim@example.com",)))
    assert erased.value is None


# --- orders and invoices --------------------------------------------------------------------


async def test_orders_are_the_customers_newest_first_under_any_of_their_refs(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    kim = f"contact:{shop['kim']}"
    assert [o.number for o in (await erp.list_orders(kim)).value] == ["10003", "10002", "10001"]
    assert [o.number for o in (await erp.list_orders(kim, limit=2)).value] == ["10003", "10002"]
    # A customer number given later: the orders stored before are still theirs, by it too.
    async with sessions() as session, session.begin():
        await set_contact_erp_ref(session, CLI, shop["kim"], "K-100")
        await save_order(session, CLI, order("10004", "K-100", 1))
        stored = await session.scalar(select(ErpOrder).where(ErpOrder.number == "10004"))
        assert stored is not None
        assert (stored.customer_ref, stored.contact_id) == ("K-100", shop["kim"])
    erp.cache.clear()
    by_ref = [o.number for o in (await erp.list_orders("K-100")).value]
    assert by_ref == ["10004", "10003", "10002", "10001"]
    assert [o.number for o in (await erp.list_orders(kim)).value] == by_ref
    company = (await erp.list_orders("C-10042")).value
    assert [(o.number, o.customer_ref) for o in company] == [("30001", "C-10042")]
    assert (await erp.list_orders("C-99999")).value == []
    summary = company[0]
    assert summary.status is OrderStatus.CONFIRMED
    assert summary.total is not None
    assert summary.total.amount == Decimal("10.00")


async def test_an_order_comes_with_its_lines_shipment_and_invoices(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    async with sessions() as session, session.begin():
        await save_order(
            session,
            CLI,
            order(
                "10330",
                "kim@example.com",
                3,
                status="shipped",
                payment_status="paid",
                carrier="DHL",
                tracking_number="JJD0001",
                tracking_url="https://tracking.example/JJD0001",
                shipped_at=at(1),
                lines=[
                    {
                        "sku": "CHAIR-1",
                        "name": "Desk chair",
                        "quantity": "2",
                        "unit_price": "149.5",
                    },
                    {"name": "Delivery", "quantity": "1", "total": "9.90"},
                    {"sku": "CABLE", "name": "Cable", "quantity": "2.5", "unit_price": "1.99"},
                ],
            ),
        )
        for number, issued, due, status, amount_due in (
            ("INV-1", 20, 6, "open", "100"),
            ("INV-2", 3, -10, "open", None),
            ("INV-3", 3, None, "paid", None),
        ):
            await save_invoice(
                session,
                CLI,
                validated(
                    InvoiceData,
                    {
                        "number": number,
                        "order_number": "10330",
                        "issued_at": (NOW - timedelta(days=issued)).date().isoformat(),
                        "due_at": None if due is None else (NOW - timedelta(days=due)).date(),
                        "total": "313.87",
                        "amount_due": amount_due,
                        "currency": "EUR",
                        "status": status,
                    },
                ),
            )
    found = (await erp.get_order(" 10330 ")).value
    assert found is not None
    assert (found.status, found.payment_status) == (OrderStatus.SHIPPED, PaymentStatus.PAID)
    assert [(line.sku, line.name, line.quantity) for line in found.lines] == [
        ("CHAIR-1", "Desk chair", Decimal(2)),
        (None, "Delivery", Decimal(1)),
        ("CABLE", "Cable", Decimal("2.5")),
    ]
    assert [line.total.amount if line.total else None for line in found.lines] == [
        Decimal("299.00"),
        Decimal("9.90"),
        Decimal("4.98"),
    ]
    assert found.total is not None
    assert found.total.amount == Decimal("313.88")
    [shipment] = found.shipments
    assert (shipment.status, shipment.carrier, shipment.tracking_url) == (
        "in transit",
        "DHL",
        "https://tracking.example/JJD0001",
    )
    assert found.tracking_number == "JJD0001"
    # Newest first; an open invoice past its due date with something due is overdue.
    assert [(i.number, i.status, i.amount_due.amount) for i in found.invoices] == [
        ("INV-3", InvoiceStatus.PAID, Decimal(0)),
        ("INV-2", InvoiceStatus.OPEN, Decimal("313.87")),
        ("INV-1", InvoiceStatus.OVERDUE, Decimal("100")),
    ]
    assert (await erp.get_order("99999")).value is None
    invoices = (await erp.list_invoices(f"contact:{shop['kim']}")).value
    assert [invoice.number for invoice in invoices] == ["INV-3", "INV-2", "INV-1"]
    assert {invoice.order_number for invoice in invoices} == {"10330"}
    assert (await erp.list_invoices(f"contact:{shop['lee']}")).value == []


async def test_invoices_of_a_legal_entity(
    sessions: SessionFactory, erp: EmbeddedErp, shop: dict[str, int]
) -> None:
    async with sessions() as session, session.begin():
        data = validated(
            InvoiceData,
            {
                "number": "INV-2305",
                "customer": "C-10042",
                "issued_at": "2026-01-05",
                "due_at": "2026-02-04",
                "total": "4210.00",
                "currency": "EUR",
            },
        )
        _, outcome = await save_invoice(session, CLI, data)
        assert outcome == "created"
        _, again = await save_invoice(session, CLI, data)
        assert again == "unchanged"
    [invoice] = (await erp.list_invoices("C-10042")).value
    assert (invoice.number, invoice.status, invoice.order_number) == (
        "INV-2305",
        InvoiceStatus.OVERDUE,
        None,
    )
    assert (invoice.issued_at, invoice.amount_due.amount) == (date(2026, 1, 5), Decimal("4210"))


# --- stock and products ---------------------------------------------------------------------


async def test_stock_per_warehouse_and_product_search(
    sessions: SessionFactory, erp: EmbeddedErp
) -> None:
    async with sessions() as session, session.begin():
        for sku, name, price in (
            ("CHAIR-1", "Ergonomic desk chair", "249.00"),
            ("TBL-OAK", "Oak dining table", "899"),
            ("100%-WOOL", "Wool blanket", None),
        ):
            data = {"sku": sku, "name": name, "price": price, "currency": price and "eur"}
            await save_product(session, CLI, validated(ProductData, data))
        for sku, warehouse, on_hand, reserved in (
            ("CHAIR-1", "Rotterdam", "3", "5"),
            ("CHAIR-1", "Hamburg", "12", "2"),
            ("TBL-OAK", "Hamburg", "0", "0"),
        ):
            stock = {"sku": sku, "warehouse": warehouse, "on_hand": on_hand, "reserved": reserved}
            await save_stock(session, CLI, validated(StockData, stock))
    chair = (await erp.stock("CHAIR-1")).value
    assert chair is not None
    assert chair.name == "Ergonomic desk chair"
    assert [(s.warehouse, s.on_hand, s.reserved, s.available) for s in chair.levels] == [
        ("Hamburg", Decimal(12), Decimal(2), Decimal(10)),
        ("Rotterdam", Decimal(3), Decimal(5), Decimal(0)),
    ]
    assert chair.available == Decimal(10)
    assert (await erp.stock("NOPE")).value is None
    found = (await erp.search_products("CHAIR")).value
    assert [(p.sku, p.price.amount if p.price else None) for p in found] == [
        ("CHAIR-1", Decimal("249.00"))
    ]
    assert [p.sku for p in (await erp.search_products("oak")).value] == ["TBL-OAK"]
    assert [p.sku for p in (await erp.search_products("%")).value] == ["100%-WOOL"]
    assert [p.sku for p in (await erp.search_products("", limit=2)).value] == [
        "100%-WOOL",
        "CHAIR-1",
    ]
    assert (await erp.search_products("wool")).value[0].price is None
    assert "3 products in 2 warehouses" in await erp.check()


async def test_text_no_table_can_hold_names_no_record(erp: EmbeddedErp) -> None:
    """NUL and lone surrogates, which PostgreSQL refuses even in a query: not found, never an
    error of the ERP."""
    for text in ("10\x00330", "\ud800"):
        assert (await erp.get_order(text)).value is None
        assert (await erp.stock(text)).value is None
        assert (await erp.list_orders(text)).value == []
        assert (await erp.list_invoices(text)).value == []
        assert (await erp.search_products(text)).value == []
    text = "kim\x00@example.com"  # CustomerQuery itself refuses lone surrogates
    query = CustomerQuery(erp_refs=(text,), emails=(text,), phones=(text,))
    assert (await erp.find_customer(query)).value is None
    assert erp.health.last_error is None


# --- writing --------------------------------------------------------------------------------


async def test_writes_are_validated_per_field_idempotent_and_audited(
    sessions: SessionFactory, shop: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput) as bad:
        validated(
            OrderData,
            {
                "number": "1",
                "customer": "kim@example.com",
                "ordered_at": "yesterday",
                "status": "lost",
                "currency": "euro",
                "tracking_url": "javascript:alert(1)",
                "lines": [{"name": "x", "quantity": "two"}, {"name": "", "quantity": "-1"}],
            },
        )
    assert bad.value.fields == {
        "ordered_at": "not a date and time (e.g. 2026-03-01T10:00:00Z)",
        "status": (
            "must be one of 'draft', 'confirmed', 'processing', 'shipped', 'delivered', "
            "'cancelled' or 'other'"
        ),
        "currency": "not a currency code (three letters, e.g. EUR)",
        "tracking_url": "must be an http:// or https:// address",
        "lines.0.quantity": "not a number",
        "lines.1.name": "required",
        "lines.1.quantity": "must not be negative",
    }
    with pytest.raises(InvalidInput) as priced:
        validated(ProductData, {"sku": "A", "name": "A", "price": "1.005"})
    assert priced.value.fields == {"price": "at most 2 decimal places"}
    with pytest.raises(InvalidInput) as unpriced:
        validated(ProductData, {"sku": "A", "name": "A", "price": "1"})
    assert unpriced.value.fields == {"currency": "give the price and its currency together"}
    async with sessions() as session, session.begin():
        with pytest.raises(InvalidInput) as nobody:
            await save_order(session, CLI, order("9", "nobody@example.com", 1))
        assert nobody.value.fields == {"customer": "no contact has the address nobody@example.com"}
        with pytest.raises(InvalidInput) as unknown:
            await save_stock(
                session, CLI, validated(StockData, {"sku": "X", "warehouse": "W", "on_hand": 1})
            )
        assert set(unknown.value.fields) == {"sku"}
        _, again = await save_order(session, CLI, order("10001", "kim@example.com", 30))
        assert again == "unchanged"
        _, changed = await save_order(
            session, CLI, order("10001", "kim@example.com", 30, status="delivered")
        )
        assert changed == "updated"
        with pytest.raises(Conflict):
            await save_order(session, CLI, order("10001", "kim@example.com", 30), create_only=True)
        with pytest.raises(Conflict):
            await set_contact_erp_ref(session, CLI, shop["lee"], "C-10042")
    async with sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions.count("erp.order.create") == 5
    assert actions.count("erp.order.update") == 1


# --- the configured ERP ---------------------------------------------------------------------


class FakeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    api_key: str = ""
    timeout_hint: int = 5


class FakeErp(EmbeddedErp):
    kind = "fake"


def build_fake(settings: BaseModel, context: ErpContext, **policy: Any) -> FakeErp:
    assert isinstance(settings, FakeSettings)
    assert context.sessions is not None
    adapter = FakeErp(context.sessions, **policy)
    adapter.health.extra["api_key"] = settings.api_key
    return adapter


FAKE = ErpKind(
    name="fake",
    label="Fake ERP",
    settings_model=FakeSettings,
    secret_fields=frozenset({"api_key"}),
    build=build_fake,
)
KINDS = {"embedded": embedded.KIND, "fake": FAKE}


async def test_the_embedded_erp_is_the_adapter_when_none_is_configured(
    sessions: SessionFactory,
) -> None:
    adapter = await config.build_adapter(sessions, CIPHER, timeout=2.0)
    assert isinstance(adapter, EmbeddedErp)
    assert (adapter.kind, adapter.timeout) == ("embedded", 2.0)
    assert adapter.settings.order_number_pattern == r"\b\d{5}\b"
    async with sessions() as session:
        view = config.view_of(await config.get_connection(session))
    assert (view.kind, view.configured, view.enabled) == ("embedded", False, True)
    assert view.settings == {"order_number_pattern": r"\b\d{5}\b"}


async def test_the_connection_keeps_its_secret_encrypted_and_never_shows_it(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session, session.begin():
        row, changed = await config.set_connection(
            session, CLI, CIPHER, "fake", {"url": "http://erp.example", "api_key": API_KEY},
            kinds=KINDS,
        )  # fmt: skip
    assert changed == ["kind", "api_key", "url"]
    async with sessions() as session:
        stored = await session.get(ErpConnection, 1)
        assert stored is not None
        ciphertext = stored.settings["api_key"]
        entries = list(await session.scalars(select(AuditEntry)))
    assert API_KEY not in json.dumps(stored.settings)
    assert CIPHER.decrypt(ciphertext) == API_KEY
    assert all(API_KEY not in json.dumps(entry.details) for entry in entries)
    [entry] = entries
    assert (entry.action, entry.details["values"]["url"]) == (
        "erp_connection.set",
        "http://erp.example",
    )
    view = config.view_of(stored, KINDS)
    assert view.settings == {
        "url": "http://erp.example",
        "timeout_hint": 5,
        "api_key_set": True,
    }
    assert API_KEY not in repr(view)
    # A change of the same kind keeps the secret (and its very ciphertext); the same secret
    # again changes nothing.
    async with sessions() as session, session.begin():
        _, changed = await config.set_connection(
            session, CLI, CIPHER, "fake", {"url": "http://erp2.example", "api_key": API_KEY},
            kinds=KINDS,
        )  # fmt: skip
        assert changed == ["url"]
        _, nothing = await config.set_connection(session, CLI, CIPHER, "fake", {}, kinds=KINDS)
        assert nothing == []
    async with sessions() as session:
        again = await session.get(ErpConnection, 1)
        assert again is not None
        assert again.settings["api_key"] == ciphertext
    adapter = await config.build_adapter(sessions, CIPHER, kinds=KINDS)
    assert isinstance(adapter, FakeErp)
    assert adapter.health.extra["api_key"] == API_KEY
    # A key that cannot read it is a clear error, not a crash.
    with pytest.raises(Exception, match="cannot decrypt the api_key of the fake ERP"):
        await config.build_adapter(sessions, CredentialCipher("other"), kinds=KINDS)
    # Invalid settings: 400 per field; an unknown kind names the installed ones.
    async with sessions() as session, session.begin():
        with pytest.raises(InvalidInput) as bad:
            await config.set_connection(
                session, CLI, CIPHER, "fake", {"timeout_hint": "soon"}, kinds=KINDS
            )
        assert set(bad.value.fields) == {"settings.timeout_hint"}
        with pytest.raises(InvalidInput, match="installed: embedded, fake"):
            await config.set_connection(session, CLI, CIPHER, "sap", {}, kinds=KINDS)
        # Disabled: no adapter, and a message that says how to turn it on.
        await config.set_connection(session, CLI, CIPHER, "fake", {}, enabled=False, kinds=KINDS)
    with pytest.raises(ErpUnavailable, match="disabled"):
        await config.build_adapter(sessions, CIPHER, kinds=KINDS)
    # Another kind replaces the settings.
    async with sessions() as session, session.begin():
        row, changed = await config.set_connection(
            session, CLI, CIPHER, "embedded", {}, enabled=True, kinds=KINDS
        )
        assert (row.kind, row.settings) == ("embedded", {"order_number_pattern": r"\b\d{5}\b"})
        assert changed == ["kind", "enabled"]
    assert isinstance(await config.build_adapter(sessions, CIPHER, kinds=KINDS), EmbeddedErp)


async def test_a_check_is_recorded_as_health_not_as_a_change(sessions: SessionFactory) -> None:
    async with sessions() as session, session.begin():
        row, _ = await config.set_connection(session, CLI, CIPHER, "embedded", {})
        updated = row.updated_at
    async with sessions() as session, session.begin():
        await config.record_check(session, ok=False, message="no answer within 5 s", at=NOW)
    async with sessions() as session:
        view = config.view_of(await config.get_connection(session))
    assert (view.last_check_at, view.last_check_result) == (NOW, "failed: no answer within 5 s")
    assert view.updated_at == updated


# --- the demo -----------------------------------------------------------------------------------


async def test_the_demo_customers_have_orders_and_invoices(sessions: SessionFactory) -> None:
    from web.demo import load_demo

    async with sessions() as session, session.begin():
        await load_demo(session)
    erp = EmbeddedErp(sessions)
    max_ = (await erp.find_customer(CustomerQuery(phones=("+49 151 23456789",)))).value
    assert max_ is not None
    assert max_.name == "Max Müller"
    assert [o.number for o in (await erp.list_orders(max_.ref)).value] == ["10330"]
    oliver = (await erp.find_customer(CustomerQuery(phones=("+16465550142",)))).value
    assert oliver is not None
    [chair] = (await erp.list_orders(oliver.ref)).value
    assert chair.status is OrderStatus.SHIPPED
    assert chair.tracking_url == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    invoices = (await erp.list_invoices("C-10042")).value
    assert [(i.number, i.status) for i in invoices] == [("INV-2305", InvoiceStatus.OVERDUE)]
    table = (await erp.stock("TBL-OAK-6")).value
    assert table is not None
    assert table.available == 0
