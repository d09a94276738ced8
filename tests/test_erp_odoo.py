"""The Odoo adapter (erp_bridge/odoo.py) against the Odoo stand-in (tests/erp_standins/odoo.py):
both protocols (JSON-2 on Odoo 19, JSON-RPC on 16 and 18), the mapping of Odoo's records,
`false` values, version differences, errors, timeouts and paging."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from erp_bridge.base import (
    CircuitBreaker,
    ErpAuthError,
    ErpContext,
    ErpError,
    ErpUnavailable,
)
from erp_bridge.models import (
    CustomerQuery,
    InvoiceStatus,
    Money,
    OrderStatus,
    PaymentStatus,
)
from erp_bridge.odoo import KIND, OdooErp, OdooSettings
from erp_bridge.registry import MODULES
from tests.erp_standins.odoo import (
    ACME,
    API_KEY,
    BULK_ORDERS,
    CHAIR,
    DATABASE,
    JO,
    LOGIN,
    Fault,
    OdooStandIn,
    demo,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAGE = 5
TRACKING_TEMPLATE = "https://track.example/parcel?id={tracking}"


def clock() -> datetime:
    return NOW


@dataclass
class Setup:
    standin: OdooStandIn
    erp: OdooErp
    protocol: str

    @property
    def version(self) -> int:
        return self.standin.version


def settings(url: str, protocol: str, **extra: Any) -> OdooSettings:
    values: dict[str, Any] = {
        "url": url,
        "database": DATABASE,
        "protocol": protocol,
        "api_key": API_KEY,
        "tracking_url_template": TRACKING_TEMPLATE,
        **extra,
    }
    if protocol == "jsonrpc":
        values.setdefault("login", LOGIN)
    return OdooSettings.model_validate(values)


@pytest.fixture(
    params=[("json2", 19), ("jsonrpc", 18), ("jsonrpc", 16)],
    ids=["json2-odoo19", "jsonrpc-odoo18", "jsonrpc-odoo16"],
)
async def odoo(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    protocol, version = request.param
    standin = demo(OdooStandIn(version))
    url = await standin.start()
    erp = OdooErp(settings(url, protocol), clock=clock, page_size=PAGE)
    try:
        yield Setup(standin, erp, protocol)
    finally:
        await erp.close()
        await standin.close()
    assert standin.violations == []


@pytest.fixture
async def odoo19() -> AsyncIterator[OdooStandIn]:
    standin = demo(OdooStandIn(19))
    await standin.start()
    try:
        yield standin
    finally:
        await standin.close()
    assert standin.violations == []


# --- customers ----------------------------------------------------------------------------------


async def test_a_customer_is_found_by_reference_and_is_the_company(odoo: Setup) -> None:
    found = (await odoo.erp.find_customer(CustomerQuery(erp_refs=("CUST-ACME",)))).value
    assert found is not None
    assert (found.ref, found.name, found.email) == (str(ACME), "Acme GmbH", "info@acme.example")
    assert (found.phone, found.tax_id, found.tier) == ("+49 30 1234 5678", "DE123456789", "Gold")
    # Our own reference (the partner's id) finds it too, before anything else is asked.
    again = await odoo.erp.find_customer(CustomerQuery(erp_refs=(str(ACME),), emails=("x@y.z",)))
    assert again.value == found
    searched = odoo.standin.object_calls("res.partner", "search_read")
    assert all(call.params["fields"] for call in searched)


async def test_a_customer_is_found_by_email_in_any_case_and_format(odoo: Setup) -> None:
    # Kim's address is "Kim Lee <Kim.Lee@Acme.example>": the company she works for answers.
    found = (await odoo.erp.find_customer(CustomerQuery(emails=("kim.lee@acme.EXAMPLE",)))).value
    assert found is not None
    assert (found.ref, found.name) == (str(ACME), "Acme GmbH")
    [search] = [
        c
        for c in odoo.standin.object_calls("res.partner", "search_read")
        if "email" in str(c.params["domain"])
    ]
    # Odoo's normalized address where the mail module has it (always, here).
    assert search.params["domain"] == [["email_normalized", "in", ["kim.lee@acme.example"]]]
    assert (await odoo.erp.find_customer(CustomerQuery(emails=("nobody@x.org",)))).value is None


async def test_without_normalized_emails_the_address_is_searched_and_compared() -> None:
    standin = demo(OdooStandIn(16))
    standin.hidden_fields["res.partner"] = {"email_normalized"}  # no mail module
    url = await standin.start()
    erp = OdooErp(settings(url, "jsonrpc"), clock=clock)
    try:
        query = CustomerQuery(emails=("KIM.LEE@acme.example",))
        found = (await erp.find_customer(query)).value
        assert found is not None
        assert found.name == "Acme GmbH"
        search, company = standin.object_calls("res.partner", "search_read")
        assert search.params["domain"] == [["email", "ilike", "kim.lee@acme.example"]]
        assert company.params["domain"] == [["id", "=", ACME]]  # Kim's commercial partner
        assert "email_normalized" not in search.params["fields"]
        # "kim_lee@..." matches Kim's address as a LIKE pattern, not as an address.
        query = CustomerQuery(emails=("kim_lee@acme.example",))
        assert (await erp.find_customer(query)).value is None
    finally:
        await erp.close()
        await standin.close()
    assert standin.violations == []


async def test_a_customer_is_found_by_phone_however_it_is_written(odoo: Setup) -> None:
    # Jo's phone is "030 9876-5432" in Odoo; the caller's number comes as +49 30 98765432.
    found = (await odoo.erp.find_customer(CustomerQuery(phones=("+49 30 98765432",)))).value
    assert found is not None
    assert (found.ref, found.name) == (str(JO), "Jo Solo")
    # `false` values: no VAT, no price list, no ref.
    assert (found.tax_id, found.tier) == (None, None)
    [search] = odoo.standin.object_calls("res.partner", "search_read")
    assert ["phone", "ilike", "9%8%7%6%5%4%3%2"] in search.params["domain"]
    # Acme's number also belongs to an archived partner, which is not looked at.
    acme = (await odoo.erp.find_customer(CustomerQuery(phones=("0049 30 12345678",)))).value
    assert acme is not None
    assert acme.name == "Acme GmbH"


async def test_a_contacts_mobile_finds_her_company_where_odoo_has_mobiles(odoo: Setup) -> None:
    query = CustomerQuery(phones=("0171 2345678",))
    found = (await odoo.erp.find_customer(query)).value
    if odoo.version >= 19:  # Odoo 19 has no mobile field: only `phone` is asked for
        assert found is None
        [search] = odoo.standin.object_calls("res.partner", "search_read")
        assert "mobile" not in str(search.params)
    else:
        assert found is not None
        assert found.name == "Acme GmbH"


async def test_a_customer_is_found_by_tax_id(odoo: Setup) -> None:
    found = (await odoo.erp.find_customer(CustomerQuery(tax_ids=("fr 123 456 789 01",)))).value
    assert found is not None
    assert (found.name, found.tax_id, found.tier) == (
        "Zed Noise",
        "FR12345678901",
        "Public Pricelist",
    )


async def test_turnover_is_twelve_months_of_invoices_less_credit_notes_in_company_currency(
    odoo: Setup,
) -> None:
    """What routing's `erp.turnover` reads (a VIP's rule): Acme's and its contacts' posted
    invoices since 2025-03-02, the reversed one's credit note taken off; Jo paid in USD, and
    counts in the company's EUR."""
    acme = (await odoo.erp.find_customer(CustomerQuery(erp_refs=("CUST-ACME",)))).value
    assert acme is not None
    bulk = sum(100 + n for n in range(1, BULK_ORDERS + 1))  # June and July 2025
    newer = Decimal("830.03") + Decimal("499") + Decimal("39.9") + Decimal("129") + 59 - 59
    assert acme.turnover == Money(amount=bulk + newer, currency="EUR")
    pages = odoo.standin.object_calls("account.move", "search_read")
    assert len(pages) == 36 // PAGE + 1  # 36 moves, a page at a time
    for asked in pages:
        assert asked.params["domain"] == [
            ["move_type", "in", ["out_invoice", "out_refund"]],
            ["state", "=", "posted"],
            ["partner_id", "child_of", ACME],
            ["invoice_date", ">=", "2025-03-02"],
        ]
        assert asked.params["fields"] == ["amount_total_signed", "company_currency_id"]
    jo = (await odoo.erp.find_customer(CustomerQuery(emails=("jo@example.org",)))).value
    assert jo is not None
    assert jo.turnover == Money(amount=Decimal("38.85"), currency="EUR")
    # A year on, only what was invoiced in the last twelve months counts.
    later = OdooErp(
        settings(odoo.standin.url, odoo.protocol),
        clock=lambda: datetime(2026, 7, 20, tzinfo=UTC),
    )
    try:
        again = (await later.find_customer(CustomerQuery(erp_refs=("CUST-ACME",)))).value
    finally:
        await later.close()
    assert again is not None
    assert again.turnover == Money(amount=newer, currency="EUR")


# --- orders -------------------------------------------------------------------------------------


async def test_orders_come_newest_first_with_their_status_and_payment(odoo: Setup) -> None:
    orders = (await odoo.erp.list_orders(str(ACME), limit=8)).value
    assert [o.number for o in orders] == [
        "S00041",
        "S00042",
        "S00047",
        "S00043",
        "S00044",
        "S00045",
        "S00046",
        "S00030",
    ]
    by_number = {o.number: o for o in orders}
    statuses = {n: (o.status, o.payment_status) for n, o in by_number.items()}
    assert statuses == {
        "S00041": (OrderStatus.DRAFT, PaymentStatus.UNKNOWN),
        "S00042": (OrderStatus.PROCESSING, PaymentStatus.PARTIAL),
        "S00047": (OrderStatus.CONFIRMED, PaymentStatus.REFUNDED),
        "S00043": (OrderStatus.SHIPPED, PaymentStatus.PAID),
        "S00044": (OrderStatus.SHIPPED, PaymentStatus.PAID),
        "S00045": (OrderStatus.DELIVERED, PaymentStatus.UNPAID),
        "S00046": (OrderStatus.CANCELLED, PaymentStatus.UNKNOWN),
        "S00030": (OrderStatus.DELIVERED, PaymentStatus.PAID),
    }
    s42 = by_number["S00042"]
    assert s42.ordered_at == datetime(2026, 2, 18, 16, 40, tzinfo=UTC)
    assert s42.total == Money(amount=Decimal("830.03"), currency="EUR")
    assert s42.customer_ref is not None  # Kim's order: her own partner id
    assert s42.tracking_number == "JD0146000012345"
    assert s42.tracking_url == (
        "https://www.dhl.com/de-en/home/tracking.html?tracking-id=JD0146000012345"
    )
    # Own fleet has no tracking page in Odoo: the configured template makes one.
    assert by_number["S00044"].tracking_url == "https://track.example/parcel?id=OF-778"
    if odoo.version >= 17:
        assert s42.status_label == "Sales Order, Partially Delivered"
    else:  # Odoo 16: no delivery_status (the pickings said it); a locked order is "done"
        assert s42.status_label == "Sales Order"
        assert by_number["S00043"].status_label == "Locked"
    # Eight orders at five a page: two pages, newest first, each ending with the id.
    pages = odoo.standin.object_calls("sale.order", "search_read")
    assert [(c.params["offset"], c.params["limit"]) for c in pages] == [(0, 5), (5, 3)]
    assert pages[0].params["order"] == "date_order desc, id desc"
    assert pages[0].params["domain"] == [["partner_id", "child_of", ACME]]


async def test_delivery_status_is_asked_for_only_where_odoo_has_it(odoo: Setup) -> None:
    await odoo.erp.list_orders(str(ACME), limit=2)
    [page] = odoo.standin.object_calls("sale.order", "search_read")
    assert ("delivery_status" in page.params["fields"]) == (odoo.version >= 17)
    [probe] = odoo.standin.object_calls("sale.order", "fields_get")
    assert probe.params["attributes"] == ["type"]


async def test_an_order_opens_with_lines_shipments_and_invoices(odoo: Setup) -> None:
    order = (await odoo.erp.get_order("S00042")).value
    assert order is not None
    assert (order.number, order.status, order.payment_status) == (
        "S00042",
        OrderStatus.PROCESSING,
        PaymentStatus.PARTIAL,
    )
    # Sections and notes are not lines; an archived product keeps its SKU; a product
    # without an internal reference has none (`false`).
    assert [(line.sku, line.name, line.quantity) for line in order.lines] == [
        ("CHAIR-1", "Desk chair", Decimal(4)),
        ("CHAIR-0", "Old chair (last stock)", Decimal(1)),
        (None, "Assembly", Decimal("2.5")),
    ]
    assert order.lines[0].unit_price == Money(amount=Decimal("129.0"), currency="EUR")
    assert order.lines[2].total == Money(amount=Decimal("122.5"), currency="EUR")
    done, ready = order.shipments
    assert (done.ref, done.status, done.carrier, done.tracking_number) == (
        "WH/OUT/00201",
        "Done",
        "DHL Express",
        "JD0146000012345",
    )
    assert done.shipped_at == datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
    assert done.tracking_url is not None
    assert done.tracking_url.endswith("tracking-id=JD0146000012345")
    # A picking not yet done: no tracking (`false`), no date.
    assert (ready.status, ready.tracking_number, ready.tracking_url, ready.shipped_at) == (
        "Ready",
        None,
        None,
        None,
    )
    [invoice] = order.invoices
    assert (invoice.number, invoice.order_number) == ("INV/2026/00142", "S00042")
    assert invoice.total == Money(amount=Decimal("830.03"), currency="EUR")
    assert invoice.amount_due == Money(amount=Decimal("200.0"), currency="EUR")
    assert (invoice.issued_at, invoice.due_at) == (date(2026, 2, 18), date(2026, 2, 25))
    assert invoice.status == InvoiceStatus.OVERDUE  # due on 25 February, today is 2 March
    pickings = odoo.standin.object_calls("stock.picking", "search_read")
    assert pickings[0].params["domain"][:2] == ["&", ["picking_type_code", "=", "outgoing"]]


async def test_an_order_number_is_found_in_any_case_and_a_wrong_one_is_not_asked(
    odoo: Setup,
) -> None:
    order = (await odoo.erp.get_order("order s00043 please")).value
    assert order is not None
    assert (order.number, order.status) == ("S00043", OrderStatus.SHIPPED)
    assert (await odoo.erp.get_order("S99999")).value is None
    asked = len(odoo.standin.calls)
    assert (await odoo.erp.get_order("my parcel")).value is None  # not an order number
    assert len(odoo.standin.calls) == asked
    assert odoo.erp.order_numbers("S00041 and S00042, again S00041") == ["S00041", "S00042"]


async def test_an_unknown_customer_has_no_orders_or_invoices(odoo: Setup) -> None:
    assert (await odoo.erp.list_orders("NO-SUCH-REF")).value == []
    assert (await odoo.erp.list_invoices("NO-SUCH-REF")).value == []


# --- invoices -----------------------------------------------------------------------------------


async def test_invoices_are_paged_newest_first_with_what_is_due(odoo: Setup) -> None:
    invoices = (await odoo.erp.list_invoices("CUST-ACME")).value  # Odoo's own ref works too
    assert len(invoices) == BULK_ORDERS + 5
    assert [i.number for i in invoices[:3]] == [
        "INV/2026/00142",
        "INV/2026/00147",
        "INV/2026/00143",
    ]
    by_number = {i.number: i for i in invoices}
    assert by_number["INV/2026/00145"].status == InvoiceStatus.OPEN
    assert by_number["INV/2026/00145"].amount_due == Money(amount=Decimal(129), currency="EUR")
    assert by_number["INV/2026/00144"].status == InvoiceStatus.PAID  # in payment
    assert by_number["INV/2026/00147"].status == InvoiceStatus.CANCELLED  # reversed
    assert by_number["INV/2025/00101"].amount_due.amount == 0
    pages = odoo.standin.object_calls("account.move", "search_read")
    assert [c.params["offset"] for c in pages] == list(range(0, BULK_ORDERS + 6, PAGE))
    assert all(c.params["limit"] == PAGE for c in pages)


# --- stock and products -------------------------------------------------------------------------


async def test_stock_per_warehouse_with_reserved_and_available(odoo: Setup) -> None:
    stock = (await odoo.erp.stock("CHAIR-1")).value
    assert stock is not None
    assert (stock.sku, stock.name) == ("CHAIR-1", "Desk chair")
    levels = {(lv.warehouse, lv.on_hand, lv.reserved, lv.available) for lv in stock.levels}
    assert levels == {
        ("Berlin", Decimal("12.0"), Decimal("3.0"), Decimal("9.0")),
        ("Hamburg", Decimal("4.0"), Decimal(0), Decimal("4.0")),
        ("Munich", Decimal("0.0"), Decimal(0), Decimal("0.0")),
    }
    assert stock.available == Decimal(13)
    reads = [
        c
        for c in odoo.standin.object_calls("product.product", "search_read")
        if c.params["domain"] == [["id", "=", CHAIR]]
    ]
    key = "warehouse_id" if odoo.version >= 18 else "warehouse"
    assert sorted(c.context[key] for c in reads) == [1, 2, 3]
    assert (await odoo.erp.stock("NOPE-1")).value is None


async def test_stock_in_the_configured_warehouses_only_and_without_free_qty() -> None:
    standin = demo(OdooStandIn(17))
    standin.hidden_fields["product.product"] = {"free_qty"}  # as if a customization hid it
    url = await standin.start()
    erp = OdooErp(settings(url, "jsonrpc", warehouse_ids=[1]), clock=clock)
    try:
        stock = (await erp.stock("CHAIR-1")).value
        assert stock is not None
        [berlin] = stock.levels
        # reserved = on hand - forecast (12 + 5 in - 4 out = 13): none; available = on hand
        assert (berlin.warehouse, berlin.on_hand, berlin.reserved, berlin.available) == (
            "Berlin",
            Decimal("12.0"),
            Decimal(0),
            Decimal("12.0"),
        )
        desk = (await erp.stock("DESK-9")).value
        assert desk is not None
        assert (desk.levels[0].reserved, desk.levels[0].available) == (
            Decimal("2.0"),
            Decimal("0.0"),
        )
    finally:
        await erp.close()
        await standin.close()
    assert standin.violations == []


async def test_products_are_searched_by_name_or_code_in_pages(odoo: Setup) -> None:
    found = (await odoo.erp.search_products("chair", limit=12)).value
    names = [p.name for p in found]
    assert names[:2] == ["Desk chair", "Chair cushion 01"]
    assert "Old chair" not in names  # archived
    assert "Internal chair part" not in names  # not sold
    assert len(found) == 12
    assert found[0].price == Money(amount=Decimal("129.0"), currency="EUR")
    assert found[0].sku == "CHAIR-1"
    pages = odoo.standin.object_calls("product.product", "search_read")
    assert [(c.params["offset"], c.params["limit"]) for c in pages] == [(0, 5), (5, 5), (10, 2)]
    service = (await odoo.erp.search_products("assembly", limit=5)).value
    assert [(p.sku, p.name) for p in service] == [(None, "Assembly")]  # no code: `false`


# --- check, errors ------------------------------------------------------------------------------


async def test_check_signs_in_and_names_the_version_database_and_user(odoo: Setup) -> None:
    line = await odoo.erp.check()
    protocol = "JSON-2" if odoo.protocol == "json2" else "JSON-RPC"
    assert line == (
        f"signed in to Odoo {odoo.version}.0 (database acme) as Mitchell Admin, over {protocol}"
    )
    if odoo.protocol == "json2":
        call = odoo.standin.object_calls("res.users", "context_get")[0]
        assert call.headers["Authorization"] == f"bearer {API_KEY}"
        assert call.headers["X-Odoo-Database"] == DATABASE
    else:
        [auth] = [c for c in odoo.standin.calls if c.method == "common.authenticate"]
        assert auth.raw_args == [DATABASE, LOGIN, API_KEY, {}]
        [read] = odoo.standin.object_calls("res.users", "search_read")
        assert read.raw_args is not None
        assert read.raw_args[:6] == [
            DATABASE,
            2,
            API_KEY,
            "res.users",
            "search_read",
            [[["id", "=", 2]]],
        ]


async def test_a_wrong_key_is_an_auth_error_on_check_and_on_calls(odoo: Setup) -> None:
    odoo.standin.api_key = "another key, rotated"
    with pytest.raises(ErpAuthError) as checked:
        await odoo.erp.check()
    if odoo.protocol == "json2":
        assert "Invalid apikey" in str(checked.value)
    else:
        assert "refused the login 'admin'" in str(checked.value)
    with pytest.raises(ErpAuthError):
        await odoo.erp.find_customer(CustomerQuery(emails=("jo@example.org",)))
    with pytest.raises(ErpAuthError):
        await odoo.erp.stock("CHAIR-1")


async def test_a_key_revoked_after_sign_in_is_access_denied_then_signs_in_again(
    odoo: Setup,
) -> None:
    assert (await odoo.erp.stock("CHAIR-1")).value is not None
    odoo.standin.api_key = "revoked"
    with pytest.raises(ErpAuthError, match=r"Access Denied|Invalid apikey"):
        await odoo.erp.list_orders(str(JO))
    odoo.standin.api_key = API_KEY
    assert [o.number for o in (await odoo.erp.list_orders(str(JO))).value] == ["S00050"]


async def test_missing_rights_are_an_auth_error_with_odoos_message(odoo: Setup) -> None:
    odoo.standin.forbidden.add("account.move")
    with pytest.raises(ErpAuthError, match=r"not allowed to access 'Journal Entry'"):
        await odoo.erp.list_invoices(str(ACME))


async def test_an_odoo_error_is_a_clear_message(odoo: Setup) -> None:
    odoo.standin.script(
        Fault(error=("builtins.ValueError", "Invalid field 'x_rating' on model 'res.partner'", 500))
    )
    with pytest.raises(
        ErpUnavailable, match=r"Odoo answered ValueError: Invalid field 'x_rating' on model"
    ):
        await odoo.erp.stock("CHAIR-1")
    # Not Odoo at all: a proxy's page.
    odoo.standin.script(Fault(status=502, body="<html>Bad Gateway</html>"))
    with pytest.raises(ErpUnavailable, match="HTTP 502"):
        await odoo.erp.stock("DESK-9")


async def test_a_module_that_is_not_installed_means_no_shipments(odoo: Setup) -> None:
    odoo.standin.missing_models.add("stock.picking")
    order = (await odoo.erp.get_order("S00042")).value
    assert order is not None
    assert order.shipments == ()
    assert order.status == (OrderStatus.PROCESSING if odoo.version >= 17 else OrderStatus.CONFIRMED)


async def test_a_hanging_odoo_is_given_up_on_at_the_timeout(odoo19: OdooStandIn) -> None:
    erp = KIND.build(settings(odoo19.url, "json2"), ErpContext(), timeout=0.3)
    try:
        odoo19.script(Fault(hang=True))
        with pytest.raises(ErpUnavailable, match=r"no answer within 0\.3 s"):
            await erp.get_order("S00042")
        odoo19.script(Fault(hang=True))
        with pytest.raises(ErpUnavailable, match=r"no answer within 0\.3 s"):
            await erp.check()
    finally:
        await erp.close()


async def test_the_breaker_stops_asking_a_failing_odoo(odoo19: OdooStandIn) -> None:
    breaker = CircuitBreaker(failures=2, cooldown=60)
    erp = KIND.build(settings(odoo19.url, "json2"), ErpContext(), breaker=breaker)
    try:
        odoo19.script(*(Fault(status=503, body="busy") for _ in range(2)))
        for _ in range(2):
            with pytest.raises(ErpUnavailable, match="HTTP 503"):
                await erp.stock("CHAIR-1")
        asked = len(odoo19.calls)
        with pytest.raises(ErpUnavailable, match="not asked for a while"):
            await erp.stock("CHAIR-1")
        assert len(odoo19.calls) == asked
    finally:
        await erp.close()


async def test_a_wrong_database_is_named(odoo: Setup) -> None:
    erp = OdooErp(settings(odoo.standin.url, odoo.protocol, database="acme_old"))
    try:
        with pytest.raises(ErpError, match="acme_old"):
            await erp.check()
    finally:
        await erp.close()


async def test_a_slow_odoo_within_the_timeout_is_waited_for(odoo19: OdooStandIn) -> None:
    odoo19.latency = 0.05
    erp = KIND.build(settings(odoo19.url, "json2"), ErpContext(), timeout=5)
    try:
        stock = (await erp.stock("DESK-9")).value
        assert stock is not None
        assert erp.health.last_latency_ms is not None
        assert erp.health.last_latency_ms >= 50
    finally:
        await erp.close()


async def test_json2_on_an_odoo_before_19_says_to_use_jsonrpc() -> None:
    standin = demo(OdooStandIn(18))
    url = await standin.start()
    erp = OdooErp(settings(url, "json2"))
    try:
        with pytest.raises(ErpUnavailable, match="needs Odoo 19 or later"):
            await erp.check()
    finally:
        await erp.close()
        await standin.close()


# --- settings and registry ----------------------------------------------------------------------


def test_settings_are_checked() -> None:
    good = settings("https://acme.odoo.com/", "json2")
    assert good.url == "https://acme.odoo.com"
    assert (good.order_number_pattern, good.warehouse_ids) == (r"S\d{5}", None)
    base = {"url": "https://acme.odoo.com", "database": "acme", "api_key": API_KEY}
    for bad in (
        {"url": "ftp://acme"},
        {"url": "https://acme.odoo.com/?db=x"},
        {"protocol": "xmlrpc"},
        {"order_number_pattern": "S(\\d"},
        {"tracking_url_template": "https://t.example/{id}"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            OdooSettings.model_validate({**base, **bad})
    with pytest.raises(ValidationError, match="needs the user's login"):
        OdooSettings(
            url="https://acme.odoo.com", database="acme", protocol="jsonrpc", api_key="k" * 20
        )


def test_the_kind_is_registered_with_its_secret() -> None:
    assert MODULES["odoo"] == "erp_bridge.odoo"
    odoo = importlib.import_module(MODULES["odoo"]).KIND
    assert odoo is KIND
    assert (odoo.name, odoo.settings_model, odoo.secret_fields) == (
        "odoo",
        OdooSettings,
        frozenset({"api_key"}),
    )
