# ruff: noqa: RUF001, RUF003 - 1C speaks Russian: its names and data are Cyrillic
"""The 1C:Enterprise adapter (erp_bridge/onec.py) against a stand-in of 1C's standard OData
interface (tests/erp_standins/onec.py) holding an Управление торговлей 11-like infobase:
customers by reference, ИНН, e-mail and phone; orders and their statuses; an order with its
lines, invoices and shipments; stock from the register's Balance; product search; other
configurations' names; refused credentials, a hanging 1C, long lists. No database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from erp_bridge import registry
from erp_bridge.base import ErpAuthError, ErpContext, ErpError, ErpUnavailable
from erp_bridge.models import (
    CustomerQuery,
    InvoiceStatus,
    Money,
    OrderStatus,
    PaymentStatus,
)
from erp_bridge.onec import KIND, OneCAdapter, same_number
from erp_bridge.onec_settings import OneCSettings, OrderFields, SettlementsRegister, StockFields
from tests.erp_standins.onec import (
    BULK,
    BULK_ORDERS,
    CHAIR,
    INVOICE_5,
    INVOICE_7,
    INVOICE_8,
    KIM,
    KIM_ORDER_12,
    ORDER_12,
    PASSWORD,
    ROMASHKA,
    ROMASHKA_DUPLICATE,
    USERNAME,
    OneCStandIn,
    ref,
    running,
)

MOSCOW = ZoneInfo("Europe/Moscow")
SETTLEMENTS = SettlementsRegister(
    name="AccumulationRegister_РасчетыСКлиентами", document="ДокументРасчета_Key"
)

Connect = Callable[..., OneCAdapter]


@pytest.fixture
async def onec() -> AsyncIterator[OneCStandIn]:
    async with running() as standin:
        yield standin


@pytest.fixture
async def connect(onec: OneCStandIn) -> AsyncIterator[Connect]:
    """Adapters on the stand-in (settings as keywords), closed at the end."""
    made: list[OneCAdapter] = []

    def make(*, timeout: float = 5.0, **settings: Any) -> OneCAdapter:
        values: dict[str, Any] = {"url": onec.url, "username": USERNAME, "password": PASSWORD}
        adapter = KIND.build(OneCSettings(**{**values, **settings}), ErpContext(), timeout=timeout)
        assert isinstance(adapter, OneCAdapter)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


# --- customers -----------------------------------------------------------------------------


async def test_a_customer_is_found_by_reference_then_tax_id_then_contact_information(
    onec: OneCStandIn, connect: Connect
) -> None:
    erp = connect()
    found = (await erp.find_customer(CustomerQuery(erp_refs=(ROMASHKA.upper(),)))).value
    assert found is not None
    assert (found.ref, found.name, found.tax_id) == (ROMASHKA, "Ромашка ООО", "7701234567")
    assert (found.email, found.phone) == ("Zakaz@Romashka.ru", "+7 (495) 123-45-67")
    assert onec.paths() == [f"Catalog_Контрагенты(guid'{ROMASHKA}')"]

    # A reference 1C does not have (404, code 9) or not a 1C reference: the ИНН decides.
    query = CustomerQuery(erp_refs=("C-1", ref("никто")), tax_ids=("5001 0073 2259",))
    kim = (await erp.find_customer(query)).value
    assert kim is not None
    assert (kim.ref, kim.name, kim.phone) == (KIM, "Ким Ли ИП", "+7 916 555-12-34")
    [by_inn] = onec.queries("Catalog_Контрагенты")
    assert by_inn["$filter"] == "ИНН eq '500100732259' and DeletionMark eq false"

    # A counterparty marked for deletion is nobody, even by its own reference.
    deleted = CustomerQuery(erp_refs=(ROMASHKA_DUPLICATE,))
    assert (await erp.find_customer(deleted)).value is None


async def test_a_customer_is_found_by_email_or_phone_in_the_contact_information(
    onec: OneCStandIn, connect: Connect
) -> None:
    erp = connect()
    # The deleted duplicate has the same address (and comes first): it is skipped.
    by_email = (await erp.find_customer(CustomerQuery(emails=(" ZAKAZ@romashka.RU ",)))).value
    assert by_email is not None
    assert by_email.ref == ROMASHKA
    [contacts] = onec.queries("Catalog_Контрагенты_КонтактнаяИнформация")
    assert contacts["$filter"] == (
        "Тип eq 'АдресЭлектроннойПочты' and substringof('zakaz@romashka.ru', Представление)"
    )
    # Phones compare by their last ten digits: 8 or +7, spaces and dashes aside.
    by_phone = (await erp.find_customer(CustomerQuery(phones=("8 (495) 123 45 67",)))).value
    assert by_phone is not None
    assert by_phone.ref == ROMASHKA
    kim = (await erp.find_customer(CustomerQuery(phones=("+7-916-555-1234",)))).value
    assert kim is not None
    assert kim.ref == KIM
    # An address that only holds another's: nobody.
    part = CustomerQuery(emails=("lee@example.com",), phones=("123",))
    assert (await erp.find_customer(part)).value is None


# --- orders --------------------------------------------------------------------------------


async def test_orders_are_newest_first_with_statuses_mapped_and_deleted_ones_left_out(
    onec: OneCStandIn, connect: Connect
) -> None:
    orders = (await connect().list_orders(ROMASHKA)).value
    assert [order.number for order in orders] == [
        "ТДУТ-000012",
        "ТДУТ-000011",
        "ТДУТ-000010",
        "ТДУТ-000008",
    ]
    assert [(order.status, order.status_label) for order in orders] == [
        (OrderStatus.PROCESSING, "КОтгрузке"),
        (OrderStatus.CONFIRMED, "КОбеспечению"),
        (OrderStatus.SHIPPED, "Закрыт"),
        (OrderStatus.DRAFT, "НеСогласован"),
    ]
    assert [order.total for order in orders] == [
        Money(amount=Decimal("54500.5"), currency="RUB"),  # the cancelled line is not in it
        Money(amount=Decimal(250), currency="USD"),
        Money(amount=Decimal(12000), currency="EUR"),  # Code 978, Description "евро"
        Money(amount=Decimal("49001"), currency="RUB"),  # no currency: the setting's
    ]
    assert orders[0].ordered_at == datetime(2026, 3, 1, 10, 15, tzinfo=MOSCOW)
    assert orders[0].customer_ref == ROMASHKA
    [query] = onec.queries("Document_ЗаказКлиента")
    assert query["$orderby"] == "Date desc"
    assert query["$filter"] == f"Контрагент_Key eq guid'{ROMASHKA}' and DeletionMark eq false"
    # The currencies are looked up once, together.
    assert len(onec.queries("Catalog_Валюты")) == 1


async def test_an_admins_status_map_names_other_words_and_keeps_the_defaults(
    connect: Connect,
) -> None:
    erp = connect(
        status_map={"КОтгрузке": "shipped", "закрыт": "delivered"},
        timezone="Asia/Yekaterinburg",
    )
    orders = (await erp.list_orders(ROMASHKA, limit=3)).value
    assert [order.status for order in orders] == [
        OrderStatus.SHIPPED,
        OrderStatus.CONFIRMED,  # not named: УТ 11's meaning
        OrderStatus.DELIVERED,
    ]
    ekaterinburg = ZoneInfo("Asia/Yekaterinburg")
    assert orders[0].ordered_at == datetime(2026, 3, 1, 10, 15, tzinfo=ekaterinburg)


async def test_an_order_opens_with_its_lines_invoices_and_shipments(
    onec: OneCStandIn, connect: Connect
) -> None:
    erp = connect()
    order = (await erp.get_order("ТДУТ-000012")).value
    assert order is not None
    assert (order.ref, order.number, order.status) == (
        ORDER_12,
        "ТДУТ-000012",
        OrderStatus.PROCESSING,
    )
    rub = "RUB"
    assert [(line.sku, line.name, line.quantity) for line in order.lines] == [
        ("КР-001", "Кресло офисное «Директор»", Decimal(2)),
        ("СТ-010", "Стол письменный угловой", Decimal(1)),
    ]  # the cancelled lamp is left out
    assert order.lines[0].unit_price == Money(amount=Decimal(15000), currency=rub)
    assert order.lines[1].total == Money(amount=Decimal("24500.5"), currency=rub)
    # Both products in one request.
    [products] = onec.queries("Catalog_Номенклатура")
    assert " or " in products["$filter"]
    assert products["$filter"].count("Ref_Key eq guid'") == 2

    # Its invoices, newest first, the one marked for deletion left out; without a
    # settlements register what is due is the whole total, and payment is unknown.
    assert [(i.number, i.order_number, i.status) for i in order.invoices] == [
        ("ТДУТ-000008", "ТДУТ-000012", InvoiceStatus.OPEN),
        ("ТДУТ-000007", "ТДУТ-000012", InvoiceStatus.OPEN),
    ]
    assert [i.amount_due for i in order.invoices] == [i.total for i in order.invoices]
    assert order.payment_status == PaymentStatus.UNKNOWN
    [invoices] = onec.queries("Document_РеализацияТоваровУслуг")
    assert "Date ge datetime'2026-03-01T10:15:00'" in invoices["$filter"]
    # A posted sale is the goods leaving: the order's shipment.
    [shipment] = order.shipments
    assert (shipment.ref, shipment.status) == (INVOICE_7, "posted")
    assert shipment.shipped_at == datetime(2026, 3, 2, 15, 0, tzinfo=MOSCOW)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ТДУТ-000012", ORDER_12),
        ("12", ORDER_12),  # the newest of the orders with these digits
        ("000012", ORDER_12),
        ("тдут-12", ORDER_12),
        ("Заказ клиента ТДУТ-000012 от 01.03.2026", ORDER_12),
        ("00УТ-12", KIM_ORDER_12),
        ("ТДУТ-000013", None),  # marked for deletion
        ("ТДУТ-777777", None),
        ("заказ", None),  # no number in it: 1C is not asked
    ],
)
async def test_order_numbers_match_with_or_without_prefix_and_leading_zeros(
    onec: OneCStandIn, connect: Connect, typed: str, expected: str | None
) -> None:
    order = (await connect().get_order(typed)).value
    assert (order.ref if order else None) == expected
    if typed == "заказ":
        assert onec.requests == []


def test_same_number_ignores_leading_zeros_and_an_untyped_prefix() -> None:
    assert same_number("12", "ТДУТ-000012")
    assert same_number("ТДУТ12", "ТДУТ-000012")
    assert not same_number("ТДУТ-12", "00УТ-000012")
    assert not same_number("12", "ТДУТ-001012")


async def test_invoices_say_what_is_due_from_the_settlements_register(
    onec: OneCStandIn, connect: Connect
) -> None:
    plain = (await connect().list_invoices(ROMASHKA)).value
    assert [(i.number, i.order_number) for i in plain] == [
        ("ТДУТ-000008", "ТДУТ-000012"),
        ("ТДУТ-000007", "ТДУТ-000012"),
        ("ТДУТ-000005", "ТДУТ-000010"),
    ]
    assert all(i.status == InvoiceStatus.OPEN and i.amount_due == i.total for i in plain)

    erp = connect(settlements_register=SETTLEMENTS)
    invoices = {i.ref: i for i in (await erp.list_invoices(ROMASHKA)).value}
    assert invoices[INVOICE_5].status == InvoiceStatus.PAID
    assert invoices[INVOICE_5].amount_due == Money(amount=Decimal(0), currency="RUB")
    assert invoices[INVOICE_7].status == InvoiceStatus.OPEN
    assert invoices[INVOICE_7].amount_due == Money(amount=Decimal(20000), currency="RUB")
    # Not posted: nothing in the register says anything; the whole total.
    assert invoices[INVOICE_8].amount_due == invoices[INVOICE_8].total
    [balance] = onec.paths("AccumulationRegister_РасчетыСКлиентами")
    assert balance.startswith("AccumulationRegister_РасчетыСКлиентами/Balance(Condition='")
    assert balance.endswith(",Dimensions='ДокументРасчета')")

    order = (await erp.get_order("12")).value
    assert order is not None
    assert order.payment_status == PaymentStatus.PARTIAL


# --- stock and products -------------------------------------------------------------------


async def test_stock_per_warehouse_comes_from_the_registers_balance(
    onec: OneCStandIn, connect: Connect
) -> None:
    stock = (await connect().stock("КР-001")).value
    assert stock is not None
    assert (stock.sku, stock.name) == ("КР-001", "Кресло офисное «Директор»")
    assert [(s.warehouse, s.on_hand, s.reserved, s.available) for s in stock.levels] == [
        ("Основной склад", Decimal(12), Decimal(0), Decimal(12)),
        ("Склад Санкт-Петербург", Decimal(4), Decimal(0), Decimal(4)),
    ]
    [balance] = [r for r in onec.requests if "/Balance" in r.path]
    assert balance.path == (
        "AccumulationRegister_ТоварыНаСкладах/Balance("
        f"Condition='Номенклатура_Key eq guid''{CHAIR}''',Dimensions='Номенклатура,Склад')"
    )
    # Sent as UTF-8, percent-encoded, spaces as %20.
    assert "%D0%A2%D0%BE%D0%B2%D0%B0%D1%80%D1%8B" in balance.raw_path
    assert "%20eq%20" in balance.raw_path
    assert all(request.query.get("$format") == "json" for request in onec.requests)

    reserving = connect(stock_fields=StockFields(reserved="ВРезервеСоСклада"))
    held = (await reserving.stock("КР-001")).value
    assert held is not None
    main = held.levels[0]
    assert (main.on_hand, main.reserved, main.available) == (Decimal(12), Decimal(2), Decimal(10))
    assert held.available == Decimal(14)

    lamp = (await reserving.stock("LMP-7")).value
    assert lamp is not None
    assert [(s.warehouse, s.available) for s in lamp.levels] == [
        ("Склад Санкт-Петербург", Decimal("2.5"))
    ]
    desk = (await reserving.stock("СТ-010")).value  # in and out again: no balance left
    assert desk is not None
    assert desk.levels == ()
    by_code = (await reserving.stock("00-00000005")).value  # no Артикул: by its code
    assert by_code is not None
    assert by_code.name == "Кресло для посетителей"
    assert (await reserving.stock("КР-000")).value is None  # marked for deletion
    assert (await reserving.stock("НЕТ-1")).value is None


async def test_products_are_searched_by_name_and_sku_in_cyrillic(
    onec: OneCStandIn, connect: Connect
) -> None:
    erp = connect()
    chairs = (await erp.search_products("кресло")).value
    # Groups and products marked for deletion are left out; names in 1C's order.
    assert [(p.name, p.sku) for p in chairs] == [
        ("Кресло для посетителей", "00-00000005"),
        ("Кресло офисное «Директор»", "КР-001"),
    ]
    assert chairs[1].ref == CHAIR
    [query] = onec.queries("Catalog_Номенклатура")
    assert (
        "substringof('кресло', Description) or substringof('кресло', Артикул)" in (query["$filter"])
    )
    assert [p.name for p in (await erp.search_products("ст-010")).value] == [
        "Стол письменный угловой"
    ]
    assert [p.sku for p in (await erp.search_products("led")).value] == ["LMP-7"]
    assert len((await erp.search_products("кресло", limit=1)).value) == 1
    assert (await erp.search_products("O'Brien")).value == []
    assert (
        "substringof('O''Brien', Description)"
        in onec.queries("Catalog_Номенклатура")[-1]["$filter"]
    )


# --- other configurations ---------------------------------------------------------------


async def test_other_configurations_objects_are_named_in_the_settings(
    onec: OneCStandIn, connect: Connect
) -> None:
    onec.rename("Document_ЗаказКлиента", "Document_ЗаказПокупателя")
    onec.rename_field("Document_ЗаказПокупателя", "Статус", "Состояние")
    onec.rename("AccumulationRegister_ТоварыНаСкладах", "AccumulationRegister_ОстаткиТоваров")

    default = connect()
    with pytest.raises(ErpUnavailable) as missing:
        await default.list_orders(ROMASHKA)
    assert "the configuration has no Document_ЗаказКлиента" in str(missing.value)
    assert "set `orders`" in str(missing.value)
    with pytest.raises(ErpError, match="set `stock_register`"):
        await default.stock("КР-001")
    with pytest.raises(ErpError, match="set `orders`"):
        await default.check()

    half = connect(orders="Document_ЗаказПокупателя")
    with pytest.raises(ErpUnavailable, match="check `order_fields`"):
        await half.list_orders(ROMASHKA)
    other_dimension = connect(
        stock_register="AccumulationRegister_ОстаткиТоваров",
        stock_fields=StockFields(product="Товар_Key"),
    )
    with pytest.raises(ErpUnavailable, match="check `stock_fields`"):
        await other_dimension.stock("КР-001")

    named = connect(
        orders="Document_ЗаказПокупателя",
        order_fields=OrderFields(status="Состояние"),
        stock_register="AccumulationRegister_ОстаткиТоваров",
    )
    orders = (await named.list_orders(ROMASHKA)).value
    assert [order.status_label for order in orders][:2] == ["КОтгрузке", "КОбеспечению"]
    stock = (await named.stock("КР-001")).value
    assert stock is not None
    assert stock.available == Decimal(16)
    assert (await named.check()).startswith(f"signed in to 1C at {onec.url} as {USERNAME}")


async def test_an_order_without_a_status_is_confirmed_when_posted(connect: Connect) -> None:
    orders = (await connect(order_fields=OrderFields(status=None)).list_orders(ROMASHKA)).value
    assert [(order.status, order.status_label) for order in orders] == [
        (OrderStatus.CONFIRMED, ""),
        (OrderStatus.CONFIRMED, ""),
        (OrderStatus.CONFIRMED, ""),
        (OrderStatus.DRAFT, ""),
    ]


# --- failures ---------------------------------------------------------------------------------


async def test_a_wrong_password_is_an_auth_error(onec: OneCStandIn, connect: Connect) -> None:
    erp = connect(password="не тот")
    with pytest.raises(ErpAuthError, match="1C refused the user 'Оператор'"):
        await erp.find_customer(CustomerQuery(tax_ids=("7701234567",)))
    with pytest.raises(ErpAuthError, match="check `username` and `password`"):
        await erp.check()
    assert onec.requests
    assert not any(request.authorized for request in onec.requests)
    # The right one, in Cyrillic, is sent as UTF-8 and accepted.
    assert (await connect().find_customer(CustomerQuery(tax_ids=("7701234567",)))).value


async def test_a_hanging_1c_is_given_up_at_the_timeout(onec: OneCStandIn, connect: Connect) -> None:
    onec.hang = True
    erp = connect(timeout=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ErpUnavailable, match=r"no answer within 0\.2 s"):
        await erp.get_order("ТДУТ-000012")
    assert loop.time() - started < 5
    with pytest.raises(ErpUnavailable, match="no answer within"):
        await erp.check()


async def test_server_errors_and_answers_that_are_not_odata_json(
    onec: OneCStandIn, connect: Connect
) -> None:
    erp = connect()
    onec.fail(503, 500)
    with pytest.raises(ErpUnavailable, match="HTTP 503"):
        await erp.search_products("письменный")
    with pytest.raises(ErpUnavailable, match="Внутренняя ошибка сервера 1С"):
        await erp.search_products("письменный")
    assert [p.name for p in (await erp.search_products("письменный")).value] == [
        "Стол письменный угловой"
    ]
    elsewhere = connect(url=onec.url.replace("/trade", "/other"))
    with pytest.raises(ErpError, match="no 1C OData interface answers"):
        await elsewhere.check()


async def test_long_lists_are_read_page_by_page(onec: OneCStandIn, connect: Connect) -> None:
    erp = connect(page_size=20)
    orders = (await erp.list_orders(BULK, limit=BULK_ORDERS)).value
    assert len(orders) == BULK_ORDERS
    dates = [order.ordered_at for order in orders if isinstance(order.ordered_at, datetime)]
    assert len(dates) == BULK_ORDERS
    assert dates == sorted(dates, reverse=True)
    pages = [(q.get("$top"), q.get("$skip")) for q in onec.queries("Document_ЗаказКлиента")]
    assert pages == [("20", None), ("20", "20"), ("20", "40")]
    assert len({order.ref for order in orders}) == BULK_ORDERS

    fewer = (await erp.list_orders(BULK, limit=5)).value
    assert len(fewer) == 5
    assert onec.queries("Document_ЗаказКлиента")[-1]["$top"] == "5"


# --- settings and the kind ------------------------------------------------------------------


def test_the_kind_and_its_settings() -> None:
    assert registry.MODULES["onec"] == "erp_bridge.onec"
    assert (KIND.name, KIND.label, KIND.settings_model) == ("onec", "1C:Enterprise", OneCSettings)
    assert KIND.secret_fields == frozenset({"password"})
    settings = OneCSettings(
        url="https://1c.example.com/trade/odata/standard.odata/",
        username="Администратор",
        password="секрет",
    )
    assert settings.url == "https://1c.example.com/trade"
    assert "секрет" not in repr(settings)
    assert settings.counterparties == "Catalog_Контрагенты"
    assert settings.orders == "Document_ЗаказКлиента"
    assert settings.status_map["КОтгрузке"] == OrderStatus.PROCESSING
    for wrong in (
        {"colour": "red"},
        {"url": "1c.example.com/trade"},
        {"order_number_pattern": "(unclosed"},
        {"timezone": "Europe/Nowhere"},
        {"counterparty_fields": {"inn": "ИНН", "kpp": "КПП"}},
    ):
        with pytest.raises(ValidationError):
            OneCSettings.model_validate(
                {"url": "https://1c.example.com/trade", "username": "u", **wrong}
            )
