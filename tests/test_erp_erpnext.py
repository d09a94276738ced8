"""The ERPNext adapter (erp_bridge/erpnext.py) against a stand-in speaking Frappe's REST API
(tests/erp_standins/erpnext.py) over a small company's data (`seed`): customers by
reference, email and phone; orders with their deliveries and invoices; stock; products;
paging; Frappe's errors; a site that hangs. No database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from erp_bridge import registry
from erp_bridge.base import (
    ErpAdapter,
    ErpAuthError,
    ErpContext,
    ErpError,
    ErpUnavailable,
)
from erp_bridge.erpnext import KIND, ErpNextAdapter, ErpNextSettings
from erp_bridge.erpnext_client import frappe_message
from erp_bridge.models import (
    CustomerQuery,
    InvoiceStatus,
    Money,
    OrderStatus,
    PaymentStatus,
)
from tests.erp_standins.erpnext import (
    API_KEY,
    API_SECRET,
    API_USER,
    ErpNextStandIn,
    error_body,
    frappe_exception,
    hang,
    proxy_error,
    seed,
    slow,
)

COMPANY = "Omni Supplies GmbH"


def clock() -> datetime:
    """The stand-in's data is of early 2026: "the last 12 months" are counted from here."""
    return datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


TRACKING = "https://track.example/parcel?id={tracking_number}"

Connect = Callable[..., ErpNextAdapter]


@pytest.fixture
async def standin() -> AsyncIterator[ErpNextStandIn]:
    site = ErpNextStandIn()
    seed(site)
    await site.start()
    yield site
    await site.close()


@pytest.fixture
async def connect(standin: ErpNextStandIn) -> AsyncIterator[Connect]:
    """Adapters to the stand-in (closed at the end): the company's by default."""
    made: list[ErpAdapter] = []

    def make(
        *,
        page_size: int | None = None,
        timeout: float = 5.0,
        clock: Callable[[], datetime] = clock,
        **settings: Any,
    ) -> ErpNextAdapter:
        values: dict[str, Any] = {
            "url": standin.url,
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "company": COMPANY,
            "tracking_url_template": TRACKING,
            **settings,
        }
        adapter = KIND.build(ErpNextSettings(**values), ErpContext(), timeout=timeout, clock=clock)
        assert isinstance(adapter, ErpNextAdapter)
        if page_size is not None:
            adapter.page_size = page_size
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def erp(connect: Connect) -> ErpNextAdapter:
    return connect()


def euro(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


# --- the kind and its settings -------------------------------------------------------------------


def test_the_kind_is_registered_with_its_secret() -> None:
    assert registry.kind("erpnext") is KIND
    assert KIND.secret_fields == frozenset({"api_secret"})
    assert KIND.settings_model is ErpNextSettings


def test_settings_are_checked_and_keep_the_secret_out_of_their_repr() -> None:
    settings = ErpNextSettings(
        url="https://erp.example.com/ ", api_key="key", api_secret="s3cr3t-value"
    )
    assert settings.url == "https://erp.example.com"
    assert settings.order_number_pattern == r"SAL-ORD-\d{4}-\d{5}"
    assert "s3cr3t-value" not in repr(settings)
    base = {"url": "https://erp.example.com", "api_key": "k", "api_secret": "s"}
    for wrong in (
        {"url": "erp.example.com"},
        {"order_number_pattern": "SO-(\\d+"},
        {"tracking_url_template": "https://track.example/"},
        {"warehouses": [" "]},
        {"password": "x"},  # extra="forbid"
    ):
        with pytest.raises(ValidationError):
            ErpNextSettings(**{**base, **wrong})


@pytest.mark.parametrize("pattern", [r"SAL-ORD-(\d)\1", r"SAL-ORD-(?=\d)\d{4}-\d{5}"])
def test_an_order_number_pattern_re2_cannot_run_is_refused_with_re2s_reason(pattern: str) -> None:
    """The same engine as every other ERP's pattern (erp_bridge/patterns.py): a backreference
    or a lookahead, which Python's `re` would take, is refused when the settings are saved."""
    with pytest.raises(ValidationError) as refused:
        ErpNextSettings(
            url="https://erp.example.com",
            api_key="k",
            api_secret="s",
            order_number_pattern=pattern,
        )
    (error,) = refused.value.errors()
    assert error["loc"] == ("order_number_pattern",)
    assert error["msg"].startswith("Value error, not a valid regular expression: ")


async def test_check_signs_in_and_finds_the_company(
    erp: ErpNextAdapter, connect: Connect, standin: ErpNextStandIn
) -> None:
    line = await erp.check()
    assert line == f"signed in to ERPNext at {standin.url} as {API_USER}, company {COMPANY}"
    with pytest.raises(ErpError, match="has no company 'Nobody Ltd'"):
        await connect(company="Nobody Ltd").check()
    # Every call carries the token header.
    assert {r.authorization for r in standin.requests} == {f"token {API_KEY}:{API_SECRET}"}


# --- customers -------------------------------------------------------------------------------


async def test_a_customer_by_its_erp_reference(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    found = (await erp.find_customer(CustomerQuery(erp_refs=("Kim Lee",)))).value
    assert found is not None
    assert (found.ref, found.name, found.email, found.phone, found.tax_id, found.tier) == (
        "Kim Lee",
        "Kim Lee",
        "kim.lee@example.com",
        "+49 170 1234567",
        "DE123456789",
        "Commercial",
    )
    [asked] = standin.lists("Customer")
    assert asked.json("filters") == [["name", "in", ["Kim Lee"]]]
    missing = await erp.find_customer(CustomerQuery(erp_refs=("Nobody",)))
    assert missing.value is None


async def test_a_customer_by_the_email_on_the_customer_in_any_case(erp: ErpNextAdapter) -> None:
    found = (await erp.find_customer(CustomerQuery(emails=("Kim.Lee@Example.com",)))).value
    assert found is not None
    assert found.ref == "Kim Lee"


async def test_a_customer_through_a_contact_with_that_email(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    # Not the contact's primary email: one of its Contact Email rows.
    found = (await erp.find_customer(CustomerQuery(emails=("j.berg@nordwind.example",)))).value
    assert found is not None
    assert (found.ref, found.tier) == ("Nordwind AG", "Wholesale")
    # Nordwind AG's Customer record holds no email or phone: the contact's are given.
    assert (found.email, found.phone) == ("jonas@nordwind.example", "+49 171 5550100")
    [contacts] = standin.lists("Contact")
    assert contacts.json("filters") == [["Dynamic Link", "link_doctype", "=", "Customer"]]
    assert ["Contact Email", "email_id", "in", ["j.berg@nordwind.example"]] in contacts.json(
        "or_filters"
    )


async def test_contacts_of_suppliers_and_disabled_customers_are_no_customers(
    erp: ErpNextAdapter,
) -> None:
    for email in ("sam@supplier.example", "old@gone.example", "nobody@example.com"):
        assert (await erp.find_customer(CustomerQuery(emails=(email,)))).value is None


@pytest.mark.parametrize(
    ("phone", "ref"),
    [
        ("+491701234567", "Kim Lee"),  # stored "+49 170 1234567" on the Customer
        ("0049 170 123 45 67", "Kim Lee"),
        ("+49 30 1234567", "Nordwind AG"),  # the contact's "030 1234567"
        ("+49 171 555-0100", "Nordwind AG"),  # the contact's mobile
        ("+49 30 7654321", None),
        ("12345", None),  # too short to look for
    ],
)
async def test_a_customer_by_phone_however_the_number_was_typed(
    erp: ErpNextAdapter, phone: str, ref: str | None
) -> None:
    found = (await erp.find_customer(CustomerQuery(phones=(phone,)))).value
    assert (found.ref if found else None) == ref


async def test_a_customer_by_tax_id(erp: ErpNextAdapter) -> None:
    found = (await erp.find_customer(CustomerQuery(tax_ids=("DE123456789",)))).value
    assert found is not None
    assert found.ref == "Kim Lee"


# --- orders ----------------------------------------------------------------------------------


async def test_turnover_is_a_years_submitted_invoices_less_returns_of_the_company(
    erp: ErpNextAdapter, connect: Connect, standin: ErpNextStandIn
) -> None:
    """What routing's `erp.turnover` reads (a VIP's rule): Kim Lee's submitted invoices of
    Omni Supplies since 2025-03-10 (59.90 + 298 + 149; the draft is not one), less a return;
    an older invoice and one of the other company do not count."""
    standin.add(
        "Sales Invoice",
        customer="Kim Lee",
        company=COMPANY,
        posting_date="2026-02-20",
        status="Return",
        is_return=1,
        docstatus=1,
        grand_total=-59.9,
        currency="EUR",
    )
    standin.add(
        "Sales Invoice",
        customer="Kim Lee",
        company=COMPANY,
        posting_date="2025-03-09",
        status="Paid",
        docstatus=1,
        grand_total=1000.0,
        currency="EUR",
    )
    standin.add(
        "Sales Invoice",
        customer="Kim Lee",
        company="Other Co",
        posting_date="2026-03-02",
        status="Unpaid",
        docstatus=1,
        grand_total=149.0,
        currency="USD",
    )
    found = (await erp.find_customer(CustomerQuery(erp_refs=("Kim Lee",)))).value
    assert found is not None
    assert found.turnover == euro("447.00")
    [asked] = standin.lists("Sales Invoice")
    assert asked.json("filters") == [
        ["customer", "=", "Kim Lee"],
        ["docstatus", "=", 1],
        ["posting_date", ">=", "2025-03-10"],
        ["company", "=", COMPANY],
    ]
    assert asked.json("fields") == ["name", "grand_total", "currency"]
    # Without a company, two currencies: no one figure.
    everywhere = (
        await connect(company=None).find_customer(CustomerQuery(erp_refs=("Kim Lee",)))
    ).value
    assert everywhere is not None
    assert everywhere.turnover is None
    # Nordwind AG has an order but no invoice: no turnover either.
    nordwind = (await erp.find_customer(CustomerQuery(erp_refs=("Nordwind AG",)))).value
    assert nordwind is not None
    assert nordwind.turnover is None


async def test_orders_newest_first_with_normalized_statuses(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    orders = (await erp.list_orders("Kim Lee")).value
    # SAL-ORD-2026-00006 is Other Co's: not this company's.
    assert [(o.number, o.status, o.status_label, o.payment_status) for o in orders] == [
        ("SAL-ORD-2026-00005", OrderStatus.DRAFT, "Draft", PaymentStatus.UNKNOWN),
        ("SAL-ORD-2026-00004", OrderStatus.CANCELLED, "Cancelled", PaymentStatus.UNKNOWN),
        ("SAL-ORD-2026-00003", OrderStatus.CONFIRMED, "To Deliver and Bill", PaymentStatus.UNKNOWN),
        (
            "SAL-ORD-2026-00002",
            OrderStatus.PROCESSING,
            "To Deliver and Bill",
            PaymentStatus.UNKNOWN,
        ),
        ("SAL-ORD-2026-00001", OrderStatus.DELIVERED, "Completed", PaymentStatus.UNKNOWN),
    ]
    first = orders[-1]
    assert (first.ref, first.customer_ref, first.ordered_at, first.total) == (
        "SAL-ORD-2026-00001",
        "Kim Lee",
        date(2026, 1, 10),
        euro("298.0"),
    )
    [asked] = standin.lists("Sales Order")
    assert asked.json("filters") == [["customer", "=", "Kim Lee"], ["company", "=", COMPANY]]
    assert asked.params["limit_page_length"] == "20"
    on_hold = (await erp.list_orders("Nordwind AG")).value
    assert [(o.status, o.status_label) for o in on_hold] == [(OrderStatus.OTHER, "On Hold")]


async def test_without_a_company_every_companys_orders_are_listed(connect: Connect) -> None:
    orders = (await connect(company=None).list_orders("Kim Lee")).value
    assert orders[0].number == "SAL-ORD-2026-00006"
    assert orders[0].total == Money(amount=Decimal("298.0"), currency="USD")


async def test_an_order_with_its_lines_delivery_tracking_and_invoices(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    order = (await erp.get_order("SAL-ORD-2026-00002")).value
    assert order is not None
    assert (order.status, order.status_label) == (OrderStatus.PROCESSING, "To Deliver and Bill")
    assert order.total == euro("648")
    assert [
        (line.sku, line.name, line.quantity, line.unit_price, line.total) for line in order.lines
    ] == [
        ("CHAIR-1", "Desk chair", Decimal("1.0"), euro("149.0"), euro("149.0")),
        ("DESK-120", "Standing desk 120 cm", Decimal("1.0"), euro("499.0"), euro("499.0")),
    ]
    # The submitted delivery note (its draft sibling is not a shipment), with no Shipment
    # document: the transporter and its receipt number, the configured tracking page.
    [shipment] = order.shipments
    assert (shipment.ref, shipment.status, shipment.carrier, shipment.tracking_number) == (
        "MAT-DN-2026-00002",
        "To Bill",
        "UPS",
        "1Z999AA10123456784",
    )
    assert shipment.tracking_url == "https://track.example/parcel?id=1Z999AA10123456784"
    assert shipment.shipped_at == datetime(2026, 2, 5, 14, 5, 9, 125000, ZoneInfo("Europe/Berlin"))
    assert (order.tracking_number, order.tracking_url) == (
        shipment.tracking_number,
        shipment.tracking_url,
    )
    # One invoice, though two of its lines name the order (Frappe answers it twice); the
    # draft invoice is not issued.
    [invoice] = order.invoices
    assert (invoice.number, invoice.order_number, invoice.status) == (
        "ACC-SINV-2026-00003",
        "SAL-ORD-2026-00002",
        InvoiceStatus.OPEN,
    )
    assert (invoice.total, invoice.amount_due) == (euro("149.0"), euro("49.0"))
    assert (invoice.issued_at, invoice.due_at) == (date(2026, 2, 5), date(2026, 3, 7))
    assert order.payment_status is PaymentStatus.PARTIAL
    [invoices_asked] = standin.lists("Sales Invoice")
    assert invoices_asked.json("filters")[0] == [
        "Sales Invoice Item",
        "sales_order",
        "=",
        "SAL-ORD-2026-00002",
    ]


async def test_a_delivered_order_tracked_by_its_shipment_and_paid(erp: ErpNextAdapter) -> None:
    order = (await erp.get_order("SAL-ORD-2026-00001")).value
    assert order is not None
    assert (order.status, order.payment_status) == (OrderStatus.DELIVERED, PaymentStatus.PAID)
    [shipment] = order.shipments
    assert (shipment.status, shipment.carrier, shipment.tracking_number) == (
        "Delivered",
        "DHL",
        "JJD000390007812345",
    )
    assert shipment.tracking_url == "https://www.dhl.de/track?piececode=JJD000390007812345"
    [invoice] = order.invoices
    assert (invoice.status, invoice.amount_due) == (InvoiceStatus.PAID, euro("0"))


async def test_a_shipment_on_its_way_reads_as_shipped(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    [shipment] = standin.docs["Shipment"].values()
    shipment["tracking_status"] = "In Progress"
    order = (await erp.get_order("SAL-ORD-2026-00001")).value
    assert order is not None
    assert order.status is OrderStatus.SHIPPED


async def test_shipments_the_api_user_may_not_read_leave_the_delivery_notes_tracking(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    standin.denied.add("Shipment")  # System Managers' only, out of the box
    order = (await erp.get_order("SAL-ORD-2026-00001")).value
    assert order is not None
    [shipment] = order.shipments
    assert (shipment.carrier, shipment.tracking_number, shipment.tracking_url) == (
        "DHL Paket",
        "JJD0001",
        "https://track.example/parcel?id=JJD0001",
    )
    await erp.get_order("SAL-ORD-2026-00002")
    assert len(standin.lists("Shipment")) == 1  # not asked again


async def test_an_order_number_typed_in_lower_case(erp: ErpNextAdapter) -> None:
    order = (await erp.get_order(" sal-ord-2026-00003 ")).value
    assert order is not None
    assert (order.number, order.status, order.payment_status) == (
        "SAL-ORD-2026-00003",
        OrderStatus.CONFIRMED,
        PaymentStatus.UNPAID,  # submitted, nothing paid, nothing invoiced
    )
    assert order.shipments == ()


async def test_an_unknown_or_foreign_order_is_none(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    assert (await erp.get_order("SAL-ORD-2026-99999")).value is None  # DoesNotExistError
    assert (await erp.get_order("SAL-ORD-2026-00006")).value is None  # Other Co's
    asked = len(standin.requests)
    assert (await erp.get_order("my order from last week")).value is None
    assert (await erp.get_order("SAL-ORD-2026-99999")).value is None  # cached
    assert len(standin.requests) == asked  # neither went to the ERP


# --- invoices --------------------------------------------------------------------------------


async def test_invoices_newest_first_with_their_orders_and_what_is_due(
    erp: ErpNextAdapter,
) -> None:
    invoices = (await erp.list_invoices("Kim Lee")).value
    assert [
        (i.number, i.order_number, i.status, i.total.amount, i.amount_due.amount) for i in invoices
    ] == [
        (
            "ACC-SINV-2026-00003",
            "SAL-ORD-2026-00002",
            InvoiceStatus.OPEN,
            Decimal("149.0"),
            Decimal("49.0"),
        ),
        (
            "ACC-SINV-2026-00002",
            "SAL-ORD-2026-00001",
            InvoiceStatus.PAID,
            Decimal("298.0"),
            Decimal("0"),
        ),
        ("ACC-SINV-2026-00001", None, InvoiceStatus.OVERDUE, Decimal("59.9"), Decimal("59.9")),
    ]


async def test_an_invoice_that_cannot_be_read_fails_the_list_readably(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    standin.script(
        proxy_error(503, path_contains="/api/resource/Sales Invoice/ACC-SINV-2026-00002")
    )
    with pytest.raises(ErpUnavailable, match=r"failed to answer Sales Invoice ACC-SINV-2026-00002"):
        await erp.list_invoices("Kim Lee")


# --- stock and products ----------------------------------------------------------------------


async def test_stock_per_warehouse_of_the_company_from_its_bins(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    stock = (await erp.stock("CHAIR-1")).value
    assert stock is not None
    assert (stock.sku, stock.name) == ("CHAIR-1", "Desk chair")
    assert [(s.warehouse, s.on_hand, s.reserved, s.available) for s in stock.levels] == [
        ("Berlin Shop - OS", Decimal("2.0"), Decimal("2.0"), Decimal("0.0")),
        ("Finished Goods - OS", Decimal("5.0"), Decimal("0.0"), Decimal("5.0")),
        ("Stores - OS", Decimal("12.0"), Decimal("3.0"), Decimal("9.0")),
    ]
    assert stock.available == Decimal(14)
    [warehouses] = standin.lists("Warehouse")
    assert warehouses.json("filters") == [["company", "=", COMPANY], ["is_group", "=", 0]]
    assert (await erp.stock("NO-SUCH-ITEM")).value is None


async def test_stock_of_an_item_named_by_a_series(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    standin.add("Item", "STO-ITEM-2026-00007", item_code="GLUE-50", item_name="Glue 50 ml")
    standin.add("Bin", item_code="GLUE-50", warehouse="Stores - OS", actual_qty=7.0)
    stock = (await erp.stock("GLUE-50")).value
    assert stock is not None
    assert (stock.sku, stock.name, stock.available) == ("GLUE-50", "Glue 50 ml", Decimal(7))


async def test_stock_in_the_configured_warehouses_in_their_order(connect: Connect) -> None:
    erp = connect(warehouses=["Stores - OS", "Main - OC"])
    stock = (await erp.stock("CHAIR-1")).value
    assert stock is not None
    assert [(s.warehouse, s.available) for s in stock.levels] == [
        ("Stores - OS", Decimal("9.0")),
        ("Main - OC", Decimal("100.0")),
    ]
    everywhere = (await connect(company=None).stock("CHAIR-1")).value
    assert everywhere is not None
    assert len(everywhere.levels) == 4


async def test_product_search_by_name_or_code_with_selling_prices(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    found = (await erp.search_products("chair")).value
    # Not the template nor the disabled chair; the selling price, not the buying price nor
    # Nordwind's own; the assembly service's standard rate in the company's currency.
    assert [(p.sku, p.name, p.price) for p in found] == [
        ("SVC-ASSEMBLY", "Chair assembly", euro("25.0")),
        ("CHAIR-1", "Desk chair", euro("149.0")),
    ]
    desks = (await erp.search_products("DESK", limit=2)).value
    assert [(p.sku, p.price) for p in desks] == [
        ("CHAIR-1", euro("149.0")),  # "Desk chair"
        ("LAMP-LED", euro("39.9")),  # "LED desk lamp": no Item Price, its standard rate
    ]
    assert (await erp.search_products("120 cm")).value[0].sku == "DESK-120"
    assert (await erp.search_products("  ")).value == []
    [first, *_] = standin.lists("Item")
    assert first.json("or_filters") == [
        ["item_code", "like", "%chair%"],
        ["item_name", "like", "%chair%"],
    ]


async def test_without_a_company_a_standard_rate_has_no_currency(connect: Connect) -> None:
    found = (await connect(company=None).search_products("lamp")).value
    assert [(p.sku, p.price) for p in found] == [("LAMP-LED", None)]


# --- long lists ------------------------------------------------------------------------------


async def test_long_lists_are_read_page_by_page(connect: Connect, standin: ErpNextStandIn) -> None:
    standin.add("Item", item_code="BOLT-M6", item_name="Bolt M6", is_sales_item=1, is_stock_item=1)
    for number in range(1, 46):
        warehouse = f"Shelf {number:02d} - OS"
        standin.add("Warehouse", warehouse, warehouse_name=f"Shelf {number:02d}", company=COMPANY)
        standin.add("Bin", item_code="BOLT-M6", warehouse=warehouse, actual_qty=float(number))
    for day in range(1, 31):
        standin.add(
            "Sales Order",
            customer="Busy Buyer",
            company=COMPANY,
            transaction_date=f"2026-01-{day:02d}",
            status="To Deliver and Bill",
            docstatus=1,
            grand_total=10.0,
            currency="EUR",
        )
    erp = connect(page_size=20)
    stock = (await erp.stock("BOLT-M6")).value
    assert stock is not None
    assert len(stock.levels) == 45
    assert stock.available == Decimal(sum(range(1, 46)))
    pages = [(r.params["limit_start"], r.params["limit_page_length"]) for r in standin.lists("Bin")]
    assert pages == [("0", "20"), ("20", "20"), ("40", "20")]

    orders = (await connect(page_size=10).list_orders("Busy Buyer", limit=25)).value
    assert [o.ordered_at for o in orders] == [date(2026, 1, day) for day in range(30, 5, -1)]
    pages = [
        (r.params["limit_start"], r.params["limit_page_length"])
        for r in standin.lists("Sales Order")
    ]
    assert pages == [("0", "10"), ("10", "10"), ("20", "5")]


# --- errors ----------------------------------------------------------------------------------


async def test_a_wrong_token_is_an_auth_error(connect: Connect, standin: ErpNextStandIn) -> None:
    erp = connect(api_secret="not-the-secret")
    with pytest.raises(ErpAuthError, match=r"refused the API key and secret.*AuthenticationError"):
        await erp.find_customer(CustomerQuery(emails=("kim.lee@example.com",)))
    with pytest.raises(ErpAuthError):
        await erp.check()
    assert standin.requests[-1].authorization == f"token {API_KEY}:not-the-secret"


async def test_a_doctype_the_user_may_not_read_is_an_auth_error(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    standin.denied.add("Bin")
    with pytest.raises(ErpAuthError, match=r"may not read the Bin list.*Insufficient Permission"):
        await erp.stock("CHAIR-1")


async def test_a_frappe_exception_becomes_a_readable_error(
    erp: ErpNextAdapter, standin: ErpNextStandIn
) -> None:
    standin.script(
        frappe_exception(
            "ValidationError",
            "Warehouse <strong>Stores - OS</strong> is frozen",
            path_contains="/api/resource/Bin",
        )
    )
    with pytest.raises(ErpError) as refused:
        await erp.stock("CHAIR-1")
    assert str(refused.value) == (
        "ERPNext refused the Bin list: HTTP 417 (ValidationError: Warehouse Stores - OS is frozen)"
    )
    standin.script(frappe_exception("QueryDeadlockError", "Deadlock found", status=500))
    with pytest.raises(ErpUnavailable, match="HTTP 500 \\(QueryDeadlockError: Deadlock found\\)"):
        await erp.list_orders("Kim Lee")
    standin.script(proxy_error(502))
    with pytest.raises(ErpUnavailable, match="HTTP 502 \\(502 Bad Gateway"):
        await erp.list_invoices("Kim Lee")


def test_the_words_of_frappe_error_bodies() -> None:
    assert frappe_message(error_body("ValidationError", "Qty <b>must</b> be &gt; 0")) == (
        "Qty must be > 0"
    )
    # Only a traceback line (no message dialog): the words after the exception's name.
    body = {
        "exc_type": "LinkValidationError",
        "exception": "frappe.exceptions.X: Could not find Row #1",
    }
    assert frappe_message(body) == "Could not find Row #1"
    assert frappe_message({"_error_message": "Insufficient Permission for Bin"}) == (
        "Insufficient Permission for Bin"
    )
    assert frappe_message({"exc_type": "AuthenticationError"}) == ""
    assert frappe_message(None) == ""


async def test_a_hanging_site_times_out(connect: Connect, standin: ErpNextStandIn) -> None:
    erp = connect(timeout=0.3)
    standin.script(hang())
    with pytest.raises(ErpUnavailable, match=r"no answer within 0\.3 s"):
        await erp.list_orders("Kim Lee")
    standin.script(hang())
    with pytest.raises(ErpUnavailable, match=r"no answer within 0\.3 s"):
        await erp.check()
    # A slow answer inside the time is an answer.
    standin.script(slow(0.05))
    assert (await erp.list_orders("Kim Lee")).value
