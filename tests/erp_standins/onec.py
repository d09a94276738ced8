# ruff: noqa: RUF001, RUF002 - 1C speaks Russian: its names and data are Cyrillic
"""A stand-in for a 1C:Enterprise infobase's standard OData interface, in the tests.

`OneCStandIn` is an aiohttp server publishing an Управление торговлей 11-like dataset at
`/trade/odata/standard.odata/`, answering as 1C's interface does (OData v3, JSON):

- HTTP basic auth, credentials in UTF-8 (the user is `Оператор`): 401 otherwise;
- JSON only when asked with `$format=json` (else an Atom document, as 1C's default);
- entity sets (`Catalog_Контрагенты`, `Document_ЗаказКлиента`, ...) as
  `{"odata.metadata": ..., "value": [...]}`, with `Ref_Key`, `DeletionMark`, `Posted`,
  `*_Key` references and tabular sections as arrays; a tabular section is also an entity set
  of its own (`Catalog_Контрагенты_КонтактнаяИнформация`, rows with their owner's `Ref_Key`);
  one record by key (`Catalog_Контрагенты(guid'…')`);
- `$filter` in the subset the adapter writes: `eq ne gt ge lt le`, `and or not`, parentheses,
  string, `guid'…'`, `datetime'…'`, number and boolean literals, `substringof`,
  `startswith`, `endswith`; strings compare case-insensitively, as on 1C's usual database
  collations; `$select`, `$orderby`, `$top`, `$skip` (`$expand` is ignored);
- accumulation registers' `Balance` virtual table: `AccumulationRegister_X/Balance(Condition=
  '…', Dimensions='…')` (or `/Balance?$filter=…`), current balances of the register's
  movements summed over the dimensions asked, as `<Resource>Balance` fields;
- OData error bodies (`{"odata.error": {"code", "message": {"lang", "value"}}}`): code 8 for
  an object the configuration lacks, 9 for a missing record, 10 for an unknown field, 11 for a
  virtual table an object does not have; a query it cannot parse is code -1 (the stand-in's
  choice).

A test scripts latency (`latency`), a hang (`hang`), the next answers' 5xx (`fail`), renames
objects and fields as another configuration names them (`rename`, `rename_field`) and reads
every request (`requests`: the decoded path, the raw one, the query, whether it was signed
in).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import BasicAuth, web
from aiohttp.test_utils import TestServer

USERNAME = "Оператор"
PASSWORD = "пароль-1С"
PUBLICATION = "/trade"
ODATA = f"{PUBLICATION}/odata/standard.odata"
EMPTY_REF = "00000000-0000-0000-0000-000000000000"
_NAMESPACE = uuid.UUID("5f7f3c3e-9d0b-4a53-8a8e-1c0000000001")

Record = dict[str, Any]


def ref(name: str) -> str:
    """A stable 1C reference for a name of the dataset."""
    return str(uuid.uuid5(_NAMESPACE, name))


# --- the dataset's references ---------------------------------------------------------------

RUB, USD, EUR = ref("валюта RUB"), ref("валюта USD"), ref("валюта EUR")
BUYERS = ref("группа Покупатели")
ROMASHKA = ref("Ромашка")
ROMASHKA_DUPLICATE = ref("Ромашка (дубль)")
KIM = ref("ИП Ким")
BULK = ref("ТД Бульба")
MAIN, SPB = ref("Основной склад"), ref("Склад Санкт-Петербург")
FURNITURE = ref("группа Мебель")
CHAIR, DESK, LAMP = ref("Кресло"), ref("Стол"), ref("Лампа")
OLD_CHAIR, GUEST_CHAIR = ref("Кресло снятое"), ref("Кресло для посетителей")
ORDER_12, ORDER_11, ORDER_10 = ref("заказ 12"), ref("заказ 11"), ref("заказ 10")
ORDER_8, ORDER_13_DELETED, KIM_ORDER_12 = ref("заказ 8"), ref("заказ 13"), ref("заказ Ким 12")
INVOICE_7, INVOICE_8, INVOICE_5 = ref("реализация 7"), ref("реализация 8"), ref("реализация 5")
INVOICE_9_DELETED = ref("реализация 9")
BULK_ORDERS = 45


def _contact(line: int, kind: str, shown: str, email: str = "", phone: str = "") -> Record:
    return {
        "LineNumber": str(line),
        "Тип": kind,
        "Вид_Key": ref(f"вид {kind}"),
        "Представление": shown,
        "ЗначенияПолей": "",
        "Страна": "РОССИЯ" if kind in ("Адрес", "Телефон") else "",
        "Регион": "",
        "Город": "",
        "АдресЭП": email,
        "ДоменноеИмяСервера": email.split("@", 1)[1] if "@" in email else "",
        "НомерТелефона": phone,
        "НомерТелефонаБезКодов": phone[-7:],
    }


def _counterparty(
    key: str,
    name: str,
    inn: str,
    contacts: list[Record],
    *,
    deleted: bool = False,
    person: bool = False,
) -> Record:
    return {
        "Ref_Key": key,
        "DataVersion": "AAAAAQAAAAA=",
        "DeletionMark": deleted,
        "Parent_Key": BUYERS,
        "IsFolder": False,
        "Code": f"00-{int(key[:6], 16) % 10**6:06d}",
        "Description": name,
        "НаименованиеПолное": name,
        "ЮрФизЛицо": "ФизЛицо" if person else "ЮрЛицо",
        "ИНН": inn,
        "КПП": "" if person else "770101001",
        "Партнер_Key": ref(f"партнер {key}"),
        "КонтактнаяИнформация": contacts,
    }


def _product(
    key: str, name: str, sku: str, code: str, *, deleted: bool = False, folder: bool = False
) -> Record:
    return {
        "Ref_Key": key,
        "DataVersion": "AAAAAQAAAAA=",
        "DeletionMark": deleted,
        "Parent_Key": EMPTY_REF if folder else FURNITURE,
        "IsFolder": folder,
        "Code": code,
        "Description": name,
        "НаименованиеПолное": name,
        "Артикул": sku,
        "ЕдиницаИзмерения_Key": ref("шт"),
    }


def _line(number: int, product: str, quantity: float, price: float, **more: Any) -> Record:
    return {
        "LineNumber": str(number),
        "Номенклатура_Key": product,
        "Характеристика_Key": EMPTY_REF,
        "Количество": quantity,
        "Цена": price,
        "Сумма": round(quantity * price, 2),
        "СтавкаНДС": "НДС20",
        "Отменено": False,
        **more,
    }


def _order(
    key: str,
    number: str,
    when: str,
    customer: str,
    status: str,
    lines: list[Record],
    *,
    currency: str = RUB,
    posted: bool = True,
    deleted: bool = False,
) -> Record:
    return {
        "Ref_Key": key,
        "DataVersion": "AAAAAgAAAAA=",
        "DeletionMark": deleted,
        "Number": number,
        "Date": when,
        "Posted": posted,
        "Организация_Key": ref("организация ТД"),
        "Партнер_Key": ref(f"партнер {customer}"),
        "Контрагент_Key": customer,
        "Статус": status,
        "Валюта_Key": currency,
        "СуммаДокумента": round(sum(line["Сумма"] for line in lines if not line["Отменено"]), 2),
        "Склад_Key": MAIN,
        "Товары": lines,
    }


def _invoice(
    key: str,
    number: str,
    when: str,
    order: str,
    amount: float,
    *,
    posted: bool = True,
    deleted: bool = False,
) -> Record:
    return {
        "Ref_Key": key,
        "DataVersion": "AAAAAwAAAAA=",
        "DeletionMark": deleted,
        "Number": number,
        "Date": when,
        "Posted": posted,
        "Контрагент_Key": ROMASHKA,
        "ЗаказКлиента_Key": order,
        "Валюта_Key": RUB,
        "СуммаДокумента": amount,
        "Товары": [],
    }


def ut11_entities() -> dict[str, list[Record]]:
    """Catalogues and documents of an УТ 11-like infobase (fresh for each stand-in)."""
    counterparties = [
        {
            "Ref_Key": BUYERS,
            "DataVersion": "AAAAAQAAAAA=",
            "DeletionMark": False,
            "Parent_Key": EMPTY_REF,
            "IsFolder": True,
            "Code": "00-000000",
            "Description": "Покупатели",
        },
        _counterparty(
            ROMASHKA_DUPLICATE,
            "Ромашка (дубль)",
            "7701234567",
            [_contact(1, "АдресЭлектроннойПочты", "zakaz@romashka.ru", email="zakaz@romashka.ru")],
            deleted=True,
        ),
        _counterparty(
            ROMASHKA,
            "Ромашка ООО",
            "7701234567",
            [
                _contact(1, "Адрес", "Москва, ул. Ленина, д. 1"),
                _contact(
                    2, "АдресЭлектроннойПочты", "Zakaz@Romashka.ru", email="Zakaz@Romashka.ru"
                ),
                _contact(3, "Телефон", "+7 (495) 123-45-67", phone="74951234567"),
            ],
        ),
        _counterparty(
            KIM,
            "Ким Ли ИП",
            "500100732259",
            [
                _contact(1, "Телефон", "+7 916 555-12-34", phone="79165551234"),
                _contact(
                    2, "АдресЭлектроннойПочты", "kim.lee@example.com", email="kim.lee@example.com"
                ),
            ],
            person=True,
        ),
        _counterparty(BULK, "Торговый дом «Бульба»", "7802345678", []),
    ]
    products = [
        _product(FURNITURE, "Мебель", "", "00-00000000", folder=True),
        _product(
            OLD_CHAIR, "Кресло офисное (снято с продажи)", "КР-000", "00-00000009", deleted=True
        ),
        _product(CHAIR, "Кресло офисное «Директор»", "КР-001", "00-00000001"),
        _product(DESK, "Стол письменный угловой", "СТ-010", "00-00000002"),
        _product(LAMP, "Лампа настольная LED", "LMP-7", "00-00000003"),
        _product(GUEST_CHAIR, "Кресло для посетителей", "", "00-00000005"),
    ]
    orders = [
        _order(
            ORDER_12,
            "ТДУТ-000012",
            "2026-03-01T10:15:00",
            ROMASHKA,
            "КОтгрузке",
            [
                _line(1, CHAIR, 2, 15000),
                _line(2, DESK, 1, 24500.5),
                _line(3, LAMP, 1, 1990, Отменено=True),
            ],
        ),
        _order(
            ORDER_13_DELETED,
            "ТДУТ-000013",
            "2026-03-02T09:00:00",
            ROMASHKA,
            "НеСогласован",
            [_line(1, LAMP, 3, 1990)],
            deleted=True,
            posted=False,
        ),
        _order(
            ORDER_11,
            "ТДУТ-000011",
            "2026-02-25T16:40:00",
            ROMASHKA,
            "КОбеспечению",
            [_line(1, LAMP, 10, 25)],
            currency=USD,
        ),
        _order(
            ORDER_10,
            "ТДУТ-000010",
            "2026-02-20T11:00:00",
            ROMASHKA,
            "Закрыт",
            [_line(1, CHAIR, 1, 12000)],
            currency=EUR,
        ),
        _order(
            ORDER_8,
            "ТДУТ-000008",
            "2026-02-10T08:30:00",
            ROMASHKA,
            "НеСогласован",
            [_line(1, DESK, 2, 24500.5)],
            posted=False,
            currency=EMPTY_REF,
        ),
        _order(
            KIM_ORDER_12,
            "00УТ-000012",
            "2025-12-01T12:00:00",
            KIM,
            "Закрыт",
            [_line(1, LAMP, 1, 1990)],
        ),
    ]
    statuses = ["НеСогласован", "КОбеспечению", "КОтгрузке", "Закрыт"]
    for index in range(BULK_ORDERS):
        day = 1 + index % 28
        month = 1 + index // 28
        orders.append(
            _order(
                ref(f"заказ Бульба {index}"),
                f"ТДУТ-{1000 + index:06d}",
                f"2025-{month:02d}-{day:02d}T09:00:00",
                BULK,
                statuses[index % len(statuses)],
                [_line(1, LAMP, 1 + index, 1990)],
            )
        )
    invoices = [
        _invoice(
            INVOICE_9_DELETED, "ТДУТ-000009", "2026-03-02T12:00:00", ORDER_12, 30000, deleted=True
        ),
        _invoice(INVOICE_7, "ТДУТ-000007", "2026-03-02T15:00:00", ORDER_12, 30000),
        _invoice(INVOICE_8, "ТДУТ-000008", "2026-03-03T10:00:00", ORDER_12, 24500.5, posted=False),
        _invoice(INVOICE_5, "ТДУТ-000005", "2026-02-21T10:00:00", ORDER_10, 12000),
    ]
    return {
        "Catalog_Валюты": [
            {"Ref_Key": RUB, "DeletionMark": False, "Code": "643", "Description": "RUB"},
            {"Ref_Key": USD, "DeletionMark": False, "Code": "840", "Description": "USD"},
            # An older configuration's way: the name in words, the ISO numeric code.
            {"Ref_Key": EUR, "DeletionMark": False, "Code": "978", "Description": "евро"},
        ],
        "Catalog_Контрагенты": counterparties,
        "Catalog_Номенклатура": products,
        "Catalog_Склады": [
            {
                "Ref_Key": MAIN,
                "DeletionMark": False,
                "IsFolder": False,
                "Description": "Основной склад",
            },
            {
                "Ref_Key": SPB,
                "DeletionMark": False,
                "IsFolder": False,
                "Description": "Склад Санкт-Петербург",
            },
        ],
        "Document_ЗаказКлиента": orders,
        "Document_РеализацияТоваровУслуг": invoices,
    }


@dataclass
class Register:
    """An accumulation register of balances: its movements (`RecordType` Receipt or
    Expense, dimension and resource values)."""

    dimensions: list[str]
    resources: list[str]
    movements: list[Record] = field(default_factory=list)

    def move(self, kind: str, **values: Any) -> None:
        self.movements.append({"RecordType": kind, **values})


def ut11_registers() -> dict[str, Register]:
    stock = Register(
        ["Номенклатура_Key", "Характеристика_Key", "Склад_Key"], ["ВНаличии", "ВРезервеСоСклада"]
    )
    blue, black = ref("синее"), ref("черное")
    # (receipt or expense, product, characteristic, warehouse, on hand, reserved)
    for kind, product, variant, warehouse, on_hand, reserved in [
        ("Receipt", CHAIR, blue, MAIN, 10, 0),
        ("Receipt", CHAIR, black, MAIN, 5, 0),
        ("Expense", CHAIR, blue, MAIN, 3, 0),
        ("Receipt", CHAIR, black, MAIN, 0, 2),
        ("Receipt", CHAIR, blue, SPB, 4, 0),
        ("Receipt", DESK, EMPTY_REF, MAIN, 1, 0),
        ("Expense", DESK, EMPTY_REF, MAIN, 1, 0),
        ("Receipt", LAMP, EMPTY_REF, SPB, 2.5, 0),
    ]:
        stock.move(
            kind,
            Номенклатура_Key=product,
            Характеристика_Key=variant,
            Склад_Key=warehouse,
            ВНаличии=on_hand,
            ВРезервеСоСклада=reserved,
        )
    settlements = Register(["Контрагент_Key", "ДокументРасчета_Key"], ["Сумма"])
    settlements.move("Receipt", Контрагент_Key=ROMASHKA, ДокументРасчета_Key=INVOICE_7, Сумма=30000)
    settlements.move("Expense", Контрагент_Key=ROMASHKA, ДокументРасчета_Key=INVOICE_7, Сумма=10000)
    settlements.move("Receipt", Контрагент_Key=ROMASHKA, ДокументРасчета_Key=INVOICE_5, Сумма=12000)
    settlements.move("Expense", Контрагент_Key=ROMASHKA, ДокументРасчета_Key=INVOICE_5, Сумма=12000)
    return {
        "AccumulationRegister_ТоварыНаСкладах": stock,
        "AccumulationRegister_РасчетыСКлиентами": settlements,
    }


# --- the $filter subset -----------------------------------------------------------------------


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_TOKEN = re.compile(
    r"""\s*(?:
        guid'(?P<guid>[^']*)'
      | datetime'(?P<datetime>[^']*)'
      | '(?P<string>(?:[^']|'')*)'
      | (?P<number>-?\d+(?:\.\d+)?)(?!\w)
      | (?P<name>[^\W\d]\w*)
      | (?P<punct>[(),=])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
Value = Callable[[Mapping[str, Any]], Any]


def _tokens(text: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise ODataError(400, "-1", f"Ошибка разбора выражения в позиции {position}: {text}")
        kind = match.lastgroup
        assert kind is not None
        value: Any = match.group(kind)
        if kind == "string":
            value = value.replace("''", "'")
        elif kind == "guid":
            value = value.lower()
        elif kind == "number":
            value = Decimal(value)
        found.append((kind, value))
        position = match.end()
    return found


def _comparable(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return value


def _compare(operator: str, left: Any, right: Any) -> bool:
    left, right = _comparable(left), _comparable(right)
    if isinstance(left, str) and isinstance(right, str) and operator in ("eq", "ne"):
        left, right = left.casefold(), right.casefold()
    if operator == "eq":
        return bool(left == right)
    if operator == "ne":
        return bool(left != right)
    if left is None or right is None or type(left) is not type(right):
        return False
    return bool(
        {
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }[operator]
    )


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, 0 if value is None else _comparable(value))


def _field_sort_key(name: str) -> Callable[[Record], tuple[bool, Any]]:
    return lambda row: _sort_key(row.get(name))


def _text(value: Any) -> str:
    return "" if value is None else str(value).casefold()


_FUNCTIONS: dict[str, Callable[[Any, Any], bool]] = {
    "substringof": lambda needle, haystack: _text(needle) in _text(haystack),
    "startswith": lambda haystack, prefix: _text(haystack).startswith(_text(prefix)),
    "endswith": lambda haystack, suffix: _text(haystack).endswith(_text(suffix)),
}


class FilterParser:
    """`$filter` text to a predicate over records whose fields are `known`."""

    def __init__(self, text: str, known: Iterable[str]) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.known = set(known)

    def parse(self) -> Value:
        value = self._or()
        if self.position != len(self.tokens):
            raise ODataError(400, "-1", f"Лишнее в выражении: {self.tokens[self.position][1]}")
        return value

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, Any]:
        token = self._peek()
        if token is None:
            raise ODataError(400, "-1", "Неожиданный конец выражения")
        self.position += 1
        return token

    def _word(self, *words: str) -> str | None:
        token = self._peek()
        if token is not None and token[0] == "name" and token[1] in words:
            self.position += 1
            return str(token[1])
        return None

    def _expect(self, punct: str) -> None:
        kind, value = self._next()
        if (kind, value) != ("punct", punct):
            raise ODataError(400, "-1", f"Ожидалось {punct!r}, получено {value!r}")

    def _or(self) -> Value:
        left = self._and()
        while self._word("or"):
            right = self._and()
            left = (lambda a, b: lambda record: bool(a(record)) or bool(b(record)))(left, right)
        return left

    def _and(self) -> Value:
        left = self._not()
        while self._word("and"):
            right = self._not()
            left = (lambda a, b: lambda record: bool(a(record)) and bool(b(record)))(left, right)
        return left

    def _not(self) -> Value:
        if self._word("not"):
            inner = self._not()
            return lambda record: not inner(record)
        return self._comparison()

    def _comparison(self) -> Value:
        left = self._primary()
        operator = self._word(*_COMPARISONS)
        if operator is None:
            return left
        right = self._primary()
        return lambda record: _compare(operator, left(record), right(record))

    def _primary(self) -> Value:
        kind, value = self._next()
        if kind == "punct" and value == "(":
            inner = self._or()
            self._expect(")")
            return inner
        if kind in ("guid", "string", "number"):
            return lambda record: value
        if kind == "datetime":
            moment = str(value)[:19]
            return lambda record: moment
        if kind != "name":
            raise ODataError(400, "-1", f"Неожиданное {value!r}")
        if value in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[value]
            return lambda record: constant
        following = self._peek()
        if following == ("punct", "("):
            function = _FUNCTIONS.get(value)
            if function is None:
                raise ODataError(400, "-1", f"Неизвестная функция {value}")
            self._expect("(")
            first = self._or()
            self._expect(",")
            second = self._or()
            self._expect(")")
            return lambda record: function(first(record), second(record))
        if self.known and value not in self.known:
            raise ODataError(400, "10", f"Запрошенное свойство не найдено: {value}")
        name = str(value)
        return lambda record: record.get(name)


def function_arguments(text: str) -> dict[str, Any]:
    """`Condition='…',Dimensions='…'` as a dict."""
    tokens = _tokens(text)
    arguments: dict[str, Any] = {}
    position = 0
    while position < len(tokens):
        try:
            (kind, name), (_, equals), (_, value) = tokens[position : position + 3]
        except ValueError:
            raise ODataError(400, "-1", f"Неверные параметры: {text}") from None
        if kind != "name" or equals != "=":
            raise ODataError(400, "-1", f"Неверные параметры: {text}")
        arguments[str(name)] = value
        position += 3
        if position < len(tokens):
            if tokens[position] != ("punct", ","):
                raise ODataError(400, "-1", f"Неверные параметры: {text}")
            position += 1
    return arguments


# --- the server -------------------------------------------------------------------------------


@dataclass
class Recorded:
    path: str  # decoded, after /odata/standard.odata/
    raw_path: str  # as sent
    query: dict[str, str]
    authorized: bool


_RESOURCE = re.compile(
    r"^(?P<entity>[^/(]+)(?:\((?P<key>[^)]*)\))?(?:/(?P<method>[^/(]+)(?:\((?P<args>.*)\))?)?$",
    re.DOTALL,
)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


class OneCStandIn:
    def __init__(self, username: str = USERNAME, password: str = PASSWORD) -> None:
        self.username = username
        self.password = password
        self.entities = ut11_entities()
        self.registers = ut11_registers()
        self.requests: list[Recorded] = []
        self.latency = 0.0
        self.hang = False
        self.failures: list[int] = []
        self.server: TestServer | None = None
        self._closing = asyncio.Event()

    # --- scripting ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The publication's address (what `OneCSettings.url` takes)."""
        assert self.server is not None
        return str(self.server.make_url(PUBLICATION))

    def fail(self, *statuses: int) -> None:
        """The next requests get these 5xx answers, in order."""
        self.failures.extend(statuses)

    def rename(self, old: str, new: str) -> None:
        """An object as another configuration names it."""
        if old in self.entities:
            self.entities[new] = self.entities.pop(old)
        else:
            self.registers[new] = self.registers.pop(old)

    def rename_field(self, entity: str, old: str, new: str) -> None:
        for record in self.entities[entity]:
            if old in record:
                record[new] = record.pop(old)

    def paths(self, entity: str | None = None) -> list[str]:
        """The decoded paths requested (of `entity` only, if given)."""
        return [
            request.path
            for request in self.requests
            if entity is None or re.match(rf"^{re.escape(entity)}(?:[(/]|$)", request.path)
        ]

    def queries(self, entity: str) -> list[dict[str, str]]:
        return [request.query for request in self.requests if request.path == entity]

    # --- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ODATA + "/{resource:.*}", self._handle)
        return app

    async def start(self) -> str:
        self.server = TestServer(self.app())
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self.server is not None:
            await self.server.close()

    # --- answering -------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""), encoding="utf-8")
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.username, self.password)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        authorized = self._authorized(request)
        raw = request.raw_path.split("?", 1)[0]
        self.requests.append(Recorded(resource, raw, dict(request.query), authorized))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.hang:  # until the stand-in closes: the client gives up first
            await self._closing.wait()
        if not authorized:
            return web.Response(
                status=401,
                text="Unauthorized",
                headers={"WWW-Authenticate": 'Basic realm="1C:Enterprise"'},
            )
        if self.failures:
            status = self.failures.pop(0)
            if status == 500:
                return self._error(ODataError(500, "-1", "Внутренняя ошибка сервера 1С"))
            return web.Response(status=status, text="Service Temporarily Unavailable")
        if request.query.get("$format") != "json":
            return web.Response(
                text='<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"/>',
                content_type="application/atom+xml",
            )
        try:
            body = self._answer(resource, request.query)
        except ODataError as error:
            return self._error(error)
        return web.Response(
            text=json.dumps(_json_value(body), ensure_ascii=False),
            content_type="application/json",
        )

    def _error(self, error: ODataError) -> web.Response:
        body = {
            "odata.error": {"code": error.code, "message": {"lang": "ru", "value": error.message}}
        }
        return web.Response(
            status=error.status,
            text=json.dumps(body, ensure_ascii=False),
            content_type="application/json",
        )

    def _metadata(self, name: str) -> str:
        assert self.server is not None
        return f"{self.server.make_url(ODATA)}/$metadata#{name}"

    def _answer(self, resource: str, query: Mapping[str, str]) -> dict[str, Any]:
        match = _RESOURCE.match(resource)
        if match is None:
            raise ODataError(400, "6", f"Неверный URL: {resource}")
        entity, key, method = match["entity"], match["key"], match["method"]
        if method is not None:
            if method != "Balance":
                raise ODataError(400, "11", f"Метод не найден: {method}")
            if entity not in self.registers:
                if entity in self.entities:
                    raise ODataError(400, "11", f"Метод не найден: {method}")
                raise ODataError(404, "8", f"Тип сущности не найден: {entity}")
            rows = self._balance(self.registers[entity], function_arguments(match["args"] or ""))
            return {
                "odata.metadata": self._metadata(f"{entity}_Balance"),
                "value": self._query(rows, query),
            }
        records = self._records(entity)
        if key is not None:
            wanted = key.removeprefix("guid'").removesuffix("'").lower()
            for record in records:
                if str(record.get("Ref_Key", "")).lower() == wanted:
                    return {"odata.metadata": self._metadata(f"{entity}/@Element"), **record}
            raise ODataError(404, "9", "Экземпляр сущности не найден")
        return {"odata.metadata": self._metadata(entity), "value": self._query(records, query)}

    def _records(self, entity: str) -> list[Record]:
        if entity in self.entities:
            return self.entities[entity]
        for parent, records in self.entities.items():
            section = entity.removeprefix(parent + "_")
            if section != entity and any(isinstance(r.get(section), list) for r in records):
                return [
                    {"Ref_Key": record["Ref_Key"], **row}
                    for record in records
                    for row in record.get(section) or []
                ]
        raise ODataError(404, "8", f"Тип сущности не найден: {entity}")

    def _balance(self, register: Register, arguments: Mapping[str, Any]) -> list[Record]:
        fields = [*register.dimensions, *register.resources, "Period", "Recorder"]
        condition = str(arguments.get("Condition") or "")
        keep = FilterParser(condition, fields).parse() if condition.strip() else None
        asked = [name.strip() for name in str(arguments.get("Dimensions") or "").split(",")]
        dimensions = []
        for name in (name for name in asked if name):
            found = f"{name}_Key" if f"{name}_Key" in register.dimensions else name
            if found not in register.dimensions:
                raise ODataError(400, "10", f"Запрошенное свойство не найдено: {name}")
            dimensions.append(found)
        dimensions = dimensions or list(register.dimensions)
        sums: dict[tuple[Any, ...], dict[str, Decimal]] = {}
        for movement in register.movements:
            if keep is not None and not keep(movement):
                continue
            group = tuple(movement.get(name) for name in dimensions)
            sign = Decimal(1) if movement["RecordType"] == "Receipt" else Decimal(-1)
            totals = sums.setdefault(group, dict.fromkeys(register.resources, Decimal(0)))
            for resource in register.resources:
                totals[resource] += sign * Decimal(str(movement.get(resource) or 0))
        return [
            {
                **dict(zip(dimensions, group, strict=True)),
                **{f"{name}Balance": value for name, value in totals.items()},
            }
            for group, totals in sums.items()
            if any(totals.values())
        ]

    def _query(self, records: list[Record], query: Mapping[str, str]) -> list[Record]:
        known = {name for record in records for name in record}
        rows = list(records)
        if query.get("$filter"):
            keep = FilterParser(query["$filter"], known).parse()
            rows = [row for row in rows if keep(row)]
        for item in reversed([part.strip() for part in query.get("$orderby", "").split(",")]):
            if not item:
                continue
            name, _, direction = item.partition(" ")
            if known and name not in known:
                raise ODataError(400, "10", f"Запрошенное свойство не найдено: {name}")
            rows.sort(
                key=_field_sort_key(name),
                reverse=direction.strip().lower() == "desc",
            )
        skip = int(query.get("$skip", "0"))
        rows = rows[skip:]
        if "$top" in query:
            rows = rows[: int(query["$top"])]
        if query.get("$select"):
            chosen = [name.strip() for name in query["$select"].split(",")]
            for name in chosen:
                if known and name not in known:
                    raise ODataError(400, "10", f"Запрошенное свойство не найдено: {name}")
            rows = [{name: row.get(name) for name in chosen if name in row} for row in rows]
        return rows


@asynccontextmanager
async def running(standin: OneCStandIn | None = None) -> AsyncIterator[OneCStandIn]:
    """A started stand-in, closed at the end."""
    onec = standin or OneCStandIn()
    await onec.start()
    try:
        yield onec
    finally:
        await onec.close()
