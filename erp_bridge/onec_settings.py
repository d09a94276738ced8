# ruff: noqa: RUF001, RUF002, RUF003 - 1C speaks Russian: its names are Cyrillic
"""The 1C adapter's settings (`OneCSettings`): the publication and the user, and the names
of everything read, because configurations differ (Управление торговлей 11, ERP 2,
Комплексная автоматизация, Бухгалтерия): every object and field name is a setting whose
default is the УТ 11 one. Also the status map (1C's order status words as `OrderStatus`;
`DEFAULT_STATUS_MAP` is УТ 11's) and the order number pattern (`number_pattern`, on RE2).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from erp_bridge.models import OrderStatus
from erp_bridge.onec_odata import ODATA_PATH
from erp_bridge.patterns import compile_pattern

# The order statuses of Управление торговлей 11 (and older words of 10.3/КА 1.1/ERP 2).
DEFAULT_STATUS_MAP: dict[str, OrderStatus] = {
    "НеСогласован": OrderStatus.DRAFT,
    "Согласован": OrderStatus.CONFIRMED,
    "КПредоплате": OrderStatus.CONFIRMED,
    "КОбеспечению": OrderStatus.CONFIRMED,
    "КВыполнению": OrderStatus.PROCESSING,
    "КОтгрузке": OrderStatus.PROCESSING,
    "Выполнен": OrderStatus.SHIPPED,
    # Closed: shipped in full, or what was left cancelled; 1C does not track the delivery.
    "Закрыт": OrderStatus.SHIPPED,
    "Отменен": OrderStatus.CANCELLED,
    "Отменён": OrderStatus.CANCELLED,
}


_FORBID = ConfigDict(extra="forbid")


class CounterpartyFields(BaseModel):
    """Fields of the counterparty catalogue and of its contact-information tabular section."""

    model_config = _FORBID

    name: str = Field(default="Description", min_length=1, max_length=150)
    inn: str = Field(default="ИНН", min_length=1, max_length=150)
    contact_info: str = Field(
        default="КонтактнаяИнформация",
        min_length=1,
        max_length=150,
        description="the tabular section of contact information",
    )
    contact_type: str = Field(default="Тип", min_length=1, max_length=150)
    presentation: str = Field(default="Представление", min_length=1, max_length=150)
    email: str = Field(default="АдресЭП", min_length=1, max_length=150)
    phone: str = Field(default="НомерТелефона", min_length=1, max_length=150)
    email_type: str = Field(default="АдресЭлектроннойПочты", min_length=1, max_length=150)
    phone_type: str = Field(default="Телефон", min_length=1, max_length=150)


class OrderFields(BaseModel):
    """Fields of the customer order document and of its goods tabular section."""

    model_config = _FORBID

    number: str = Field(default="Number", min_length=1, max_length=150)
    date: str = Field(default="Date", min_length=1, max_length=150)
    counterparty: str = Field(default="Контрагент_Key", min_length=1, max_length=150)
    status: str | None = Field(
        default="Статус", max_length=150, description="none: posted is confirmed"
    )
    amount: str = Field(default="СуммаДокумента", min_length=1, max_length=150)
    currency: str = Field(default="Валюта_Key", min_length=1, max_length=150)
    lines: str = Field(default="Товары", min_length=1, max_length=150)
    product: str = Field(default="Номенклатура_Key", min_length=1, max_length=150)
    quantity: str = Field(default="Количество", min_length=1, max_length=150)
    price: str = Field(default="Цена", min_length=1, max_length=150)
    line_amount: str = Field(default="Сумма", min_length=1, max_length=150)
    line_cancelled: str | None = Field(
        default="Отменено", max_length=150, description="a line flag: cancelled lines are left out"
    )


class ProductFields(BaseModel):
    model_config = _FORBID

    sku: str = Field(default="Артикул", min_length=1, max_length=150)
    name: str = Field(default="Description", min_length=1, max_length=150)
    code: str = Field(default="Code", min_length=1, max_length=150)


class StockFields(BaseModel):
    """Dimensions and resources of the stock register (its `Balance` fields are the resource
    names followed by `Balance`)."""

    model_config = _FORBID

    product: str = Field(default="Номенклатура_Key", min_length=1, max_length=150)
    warehouse: str = Field(default="Склад_Key", min_length=1, max_length=150)
    on_hand: str = Field(default="ВНаличии", min_length=1, max_length=150)
    reserved: str | None = Field(
        default=None,
        max_length=150,
        description="a reserve resource, e.g. ВРезервеСоСклада: available is on hand minus it",
    )


class InvoiceFields(BaseModel):
    model_config = _FORBID

    number: str = Field(default="Number", min_length=1, max_length=150)
    date: str = Field(default="Date", min_length=1, max_length=150)
    counterparty: str = Field(default="Контрагент_Key", min_length=1, max_length=150)
    orders: list[str] = Field(
        default_factory=lambda: ["ЗаказКлиента_Key", "Заказ_Key"],
        min_length=1,
        max_length=5,
        description="fields referring to the customer order, on the document or its lines",
    )
    amount: str = Field(default="СуммаДокумента", min_length=1, max_length=150)
    currency: str = Field(default="Валюта_Key", min_length=1, max_length=150)
    lines: str = Field(default="Товары", min_length=1, max_length=150)
    due_date: str | None = Field(default=None, max_length=150)
    status: str | None = Field(default=None, max_length=150)


class SettlementsRegister(BaseModel):
    """An accumulation register of balances holding what customers owe per invoice."""

    model_config = _FORBID

    name: str = Field(min_length=1, max_length=150, description="e.g. AccumulationRegister_…")
    document: str = Field(
        min_length=1, max_length=150, description="the dimension holding the invoice's reference"
    )
    resource: str = Field(default="Сумма", min_length=1, max_length=150)


class OneCSettings(BaseModel):
    """A 1C:Enterprise infobase published over HTTP with the standard OData interface on.
    Names default to Управление торговлей 11; other configurations set theirs."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8,
        max_length=500,
        description="the publication, e.g. https://1c.example.com/trade",
    )
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(default="", max_length=200, description="secret", repr=False)
    counterparties: str = Field(default="Catalog_Контрагенты", min_length=1, max_length=150)
    counterparty_fields: CounterpartyFields = Field(
        default_factory=CounterpartyFields, json_schema_extra={"cli": False}
    )
    orders: str = Field(default="Document_ЗаказКлиента", min_length=1, max_length=150)
    order_fields: OrderFields = Field(default_factory=OrderFields, json_schema_extra={"cli": False})
    products: str = Field(default="Catalog_Номенклатура", min_length=1, max_length=150)
    product_fields: ProductFields = Field(
        default_factory=ProductFields, json_schema_extra={"cli": False}
    )
    stock_register: str = Field(
        default="AccumulationRegister_ТоварыНаСкладах", min_length=1, max_length=150
    )
    stock_fields: StockFields = Field(default_factory=StockFields, json_schema_extra={"cli": False})
    warehouses: str = Field(default="Catalog_Склады", min_length=1, max_length=150)
    invoices: str = Field(default="Document_РеализацияТоваровУслуг", min_length=1, max_length=150)
    invoice_fields: InvoiceFields = Field(
        default_factory=InvoiceFields, json_schema_extra={"cli": False}
    )
    settlements_register: SettlementsRegister | None = Field(
        default=None, json_schema_extra={"cli": False}
    )
    currencies: str = Field(default="Catalog_Валюты", min_length=1, max_length=150)
    currency_code: str = Field(
        default="RUB", pattern=r"^[A-Z]{3}$", description="when 1C's currency is not an ISO one"
    )
    status_map: dict[str, OrderStatus] = Field(
        default_factory=lambda: dict(DEFAULT_STATUS_MAP),
        max_length=100,
        description="1C's order status words; words not named here keep their УТ 11 meaning",
        json_schema_extra={"cli": False},
    )
    order_number_pattern: str = Field(
        default=r"[0-9А-ЯЁA-Z]{0,4}-?\d{1,11}",
        min_length=1,
        max_length=200,
        description="what an order number looks like in what the operator types",
    )
    timezone: str = Field(default="Europe/Moscow", max_length=64)
    page_size: int = Field(default=100, ge=1, le=1000, description="records per request")

    @field_validator("url")
    @classmethod
    def _publication(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be the http(s) address of the publication")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        # Pasted with the interface's own path: the publication is what comes before it.
        return value.strip().rstrip("/").removesuffix("/" + ODATA_PATH)

    @field_validator("order_number_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        number_pattern(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


def number_pattern(pattern: str) -> Any:
    """The order number pattern on RE2 (linear time whatever an admin writes), matched
    case-insensitively."""
    return compile_pattern(pattern, case_sensitive=False)
