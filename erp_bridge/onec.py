# ruff: noqa: RUF002 - 1C speaks Russian: its names are Cyrillic
"""The 1C:Enterprise adapter: customers, orders, invoices, stock and products read through
1C's standard OData interface, and mapped onto `erp_bridge.models`; and `KIND`.

The wire (URLs with Cyrillic names, `$filter` literals, paging, OData error bodies as errors
naming the setting to change) is `erp_bridge.onec_odata`; the settings (every object and field
name, defaulting to Управление торговлей 11's, and the status map) are
`erp_bridge.onec_settings`. Records marked for deletion (`DeletionMark`) and catalogue groups
(`IsFolder`) are skipped everywhere.

How each answer is found:

- **customer**: by `Ref_Key` (the ERP reference the CRM keeps), then by `ИНН` (tax id), then
  by e-mail, then by phone in the counterparty's contact information. Contact information is
  searched in the tabular section's own entity set (`Catalog_Контрагенты_КонтактнаяИнформация`):
  rows of type `АдресЭлектроннойПочты` whose `Представление` holds the address, rows of type
  `Телефон` whose `НомерТелефона` holds the number's last ten digits; each hit is checked
  again here (whole address, case-insensitively; the last ten digits of the number).
- **orders**: `Document_ЗаказКлиента` of the counterparty, newest first, paged with
  `$top`/`$skip`; the status word (`Статус`, e.g. `КОтгрузке`) is mapped by `status_map`
  and kept as `status_label`; without a status, a posted order is confirmed, else a draft.
- **an order by number**: the number is found in what the operator typed with
  `order_number_pattern`; it matches an order whose number has the same digits, leading zeros
  aside, and the same prefix if one was typed (`12`, `000012`, `ТДУТ-12` all find
  `ТДУТ-000012`; several orders with those digits: the newest). Its lines name their products
  (`Артикул`, `Description`), looked up in batches (`Ref_Key eq guid'…' or …`).
- **invoices**: the counterparty's `Document_РеализацияТоваровУслуг` (the Russian sales
  document is both the shipment and the bill); an order's are those whose order reference
  (`ЗаказКлиента_Key` or `Заказ_Key`, on the document or on its lines) is the order. A posted
  one is also the order's shipment.
- **stock**: the product by `Артикул` (or `Code`), its balance from the stock register's
  `Balance` virtual table, per warehouse (`Склад_Key`, names from `Catalog_Склады`).
- **products**: `substringof` on `Description` and `Артикул`.
- **currency**: 1C names a currency by a reference to `Catalog_Валюты`, whose `Description`
  is the ISO letter code in current configurations and whose `Code` is the ISO numeric one;
  either is used, else `currency_code`.

What is simplified, honestly:

- **What is still due on an invoice.** The standard interface has no "balance of this
  invoice". With `settlements_register` set, the debt is read from that register's `Balance`
  by a dimension that holds the invoice's own reference (settlements by invoice); with it
  unset, or for an unposted invoice, `amount_due` is the whole total and the status `open`:
  nothing here says it was paid. Registers that settle by order or by contract, or through a
  catalogue of settlement objects (УТ 11.4 and later), do not hold the invoice: leave the
  setting unset for them. An order's payment status is known only with the register.
- **Contact information** is matched as described above: a configuration that fills only
  `Представление` with a formatted phone number is not found by phone; the first e-mail and
  phone rows are the customer's.
- **Bounded reads**: a customer's newest 50 invoices; an order's invoices and the candidates
  for a typed number among 5 pages (`page_size` records each), newest first.
- **Stock** is the current balance (no `Period`), summed over the register's other
  dimensions (characteristics, series); a product's SKU is its `Артикул`, else its `Code`.
- **Dates** are the infobase's wall time; `timezone` says which.
- **Prices** of products (an information register of prices in УТ 11) are not read.

Errors are the client's (see `erp_bridge.onec_odata`); an order or a product that is not
there is `ErpNotFound` (a customer that is not there is None). Network errors and timeouts
escape to the base class, which owns the timeout, cache and breaker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from erp_bridge.base import ErpAdapter, ErpContext, ErpKind, ErpNotFound
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    InvoiceStatus,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSummary,
    PaymentStatus,
    Product,
    Shipment,
    Stock,
    StockLevel,
)
from erp_bridge.onec_odata import (
    EMPTY_REF,
    ODataClient,
    Record,
    batches,
    guid,
    is_ref,
    literal,
    live,
)
from erp_bridge.onec_settings import DEFAULT_STATUS_MAP, OneCSettings, number_pattern

INVOICES_LIMIT = 50  # a customer's newest invoices
ORDER_SEARCH_PAGES = 5  # pages of candidates read when looking an order up by its digits
MAX_TYPED = 200  # characters of what the operator typed that are looked at

_ISO_LETTERS = re.compile(r"^[A-Z]{3}$")
_NUMBER_PARTS = re.compile(r"^(.*?)-?([0-9]+)$")
# ISO 4217 numeric codes (what 1C keeps in Catalog_Валюты.Code) of the currencies 1C shops
# usually keep, for configurations whose Description is not the letter code.
ISO_NUMERIC = {
    "036": "AUD",
    "051": "AMD",
    "156": "CNY",
    "392": "JPY",
    "398": "KZT",
    "417": "KGS",
    "643": "RUB",
    "756": "CHF",
    "826": "GBP",
    "840": "USD",
    "860": "UZS",
    "933": "BYN",
    "944": "AZN",
    "949": "TRY",
    "972": "TJS",
    "978": "EUR",
    "980": "UAH",
    "981": "GEL",
}


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def split_number(number: str) -> tuple[str, str]:
    """A 1C document number as (prefix, digits): `ТДУТ-000012` is (`ТДУТ`, `000012`)."""
    found = _NUMBER_PARTS.match(number.strip().upper())
    if found is None:
        return number.strip().upper(), ""
    return found.group(1).replace(" ", "").rstrip("-"), found.group(2)


def same_number(typed: str, number: str) -> bool:
    """Whether a typed order number names `number`: the same digits, leading zeros aside, and
    the same prefix if one was typed."""
    typed_prefix, typed_digits = split_number(typed)
    prefix, digits = split_number(number)
    if not typed_digits or not digits:
        return typed.strip().upper() == number.strip().upper()
    if typed_digits.lstrip("0") != digits.lstrip("0"):
        return False
    return not typed_prefix or typed_prefix == prefix


# --- the adapter ------------------------------------------------------------------------------


class OneCAdapter(ErpAdapter):
    """1C:Enterprise through its standard OData interface (see the module's docstring)."""

    kind = "onec"

    def __init__(self, settings: OneCSettings, **policy: Any) -> None:
        super().__init__(**policy)
        self.settings = settings
        self.odata = ODataClient(
            settings.url,
            settings.username,
            settings.password,
            timeout=self.timeout,
            page_size=settings.page_size,
        )
        self.zone = ZoneInfo(settings.timezone)
        self.number_pattern = number_pattern(settings.order_number_pattern)
        self._currency_codes: dict[str, str] = {}

    async def close(self) -> None:
        await self.odata.close()

    # --- values -----------------------------------------------------------------------------------

    def _when(self, value: object) -> datetime | None:
        """A 1C date (the infobase's wall time, `0001-01-01T00:00:00` when empty)."""
        if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment

    def _day(self, value: object) -> date | None:
        moment = self._when(value)
        return moment.date() if moment is not None else None

    def _money(
        self, amount: object, currency_ref: object, codes: Mapping[str, str]
    ) -> Money | None:
        value = _decimal(amount)
        if value is None:
            return None
        return Money(amount=value, currency=self._currency(currency_ref, codes))

    def _currency(self, ref: object, codes: Mapping[str, str]) -> str:
        if isinstance(ref, str) and is_ref(ref):
            return codes.get(ref.lower(), self.settings.currency_code)
        return self.settings.currency_code

    async def _currencies(self, refs: Iterable[object]) -> dict[str, str]:
        """ISO codes of 1C currency references (kept for the adapter's life: they do not
        change)."""
        wanted = {ref.lower() for ref in refs if isinstance(ref, str) and is_ref(ref)}
        missing = wanted - self._currency_codes.keys()
        if missing:
            found = await self.odata.by_keys(
                self.settings.currencies, missing, "currencies", select=["Code", "Description"]
            )
            for ref in missing:
                record = found.get(ref)
                self._currency_codes[ref] = (
                    _iso_code(record) if record else None
                ) or self.settings.currency_code
        return {ref: self._currency_codes[ref] for ref in wanted}

    # --- customers --------------------------------------------------------------------------------

    async def do_find_customer(self, query: CustomerQuery) -> Customer | None:
        s = self.settings
        fields = s.counterparty_fields
        for ref in query.erp_refs:
            if is_ref(ref.strip()):
                record = await self.odata.one(s.counterparties, ref.strip(), "counterparties")
                if record is not None and live(record):
                    return self._customer(record)
        for tax_id in query.tax_ids:
            inn = _digits(tax_id)
            if len(inn) not in (10, 12):  # a company's ИНН has 10 digits, a person's 12
                continue
            rows = await self.odata.collect(
                s.counterparties,
                "counterparties",
                "counterparty_fields",
                where=f"{fields.inn} eq {literal(inn)} and DeletionMark eq false",
                orderby="Description",
                want=1,
            )
            if rows:
                return self._customer(rows[0])
        for email in query.emails:
            address = email.strip().lower()
            if "@" in address:
                customer = await self._by_contact(
                    fields.email_type, fields.presentation, address, fields.email, _lowered
                )
                if customer is not None:
                    return customer
        for phone in query.phones:
            digits = _digits(phone)
            if len(digits) >= 7:
                customer = await self._by_contact(
                    fields.phone_type, fields.phone, digits[-10:], fields.phone, _phone_tail
                )
                if customer is not None:
                    return customer
        return None

    async def _by_contact(
        self,
        kind: str,
        field: str,
        needle: str,
        value_field: str,
        normal: Callable[[object], str],
    ) -> Customer | None:
        """The first live counterparty with a contact-information row of type `kind` whose
        `field` holds `needle`, and whose `value_field` or presentation is `needle` once
        `normal`ized (1C's substring search is only a first sieve)."""
        s = self.settings
        fields = s.counterparty_fields
        section = f"{s.counterparties}_{fields.contact_info}"
        rows = await self.odata.query(
            section,
            "counterparties",
            "counterparty_fields",
            where=(
                f"{fields.contact_type} eq {literal(kind)} "
                f"and substringof({literal(needle)}, {field})"
            ),
            top=s.page_size,
        )
        owners = [
            str(row["Ref_Key"]).lower()
            for row in rows
            if row.get("Ref_Key")
            and needle in {normal(row.get(value_field)), normal(row.get(fields.presentation))}
        ]
        if not owners:
            return None
        found = await self.odata.by_keys(s.counterparties, owners, "counterparties")
        for owner in owners:
            record = found.get(owner)
            if record is not None and live(record):
                return self._customer(record)
        return None

    def _customer(self, record: Record) -> Customer:
        fields = self.settings.counterparty_fields
        email = phone = None
        rows = record.get(fields.contact_info)
        for row in rows if isinstance(rows, list) else []:
            kind = row.get(fields.contact_type)
            if kind == fields.email_type and email is None:
                email = str(row.get(fields.email) or row.get(fields.presentation) or "") or None
            elif kind == fields.phone_type and phone is None:
                phone = str(row.get(fields.presentation) or row.get(fields.phone) or "") or None
        inn = str(record.get(fields.inn) or "").strip()
        return Customer(
            ref=str(record["Ref_Key"]),
            name=str(record.get(fields.name) or record.get("Description") or "")[:500],
            email=email[:500] if email else None,
            phone=phone[:500] if phone else None,
            tax_id=inn or None,
        )

    # --- orders -----------------------------------------------------------------------------------

    def _status(self, record: Record) -> tuple[OrderStatus, str]:
        field = self.settings.order_fields.status
        word = str(record.get(field) or "").strip() if field else ""
        if not word:
            return (OrderStatus.CONFIRMED if record.get("Posted") else OrderStatus.DRAFT), ""
        for table in (self.settings.status_map, DEFAULT_STATUS_MAP):
            for known, status in table.items():
                if known.casefold() == word.casefold():
                    return status, word
        return OrderStatus.OTHER, word

    def _summary_fields(self, record: Record, codes: Mapping[str, str]) -> dict[str, Any]:
        f = self.settings.order_fields
        status, label = self._status(record)
        counterparty = record.get(f.counterparty)
        return {
            "ref": str(record["Ref_Key"]),
            "number": str(record.get(f.number) or "").strip() or str(record["Ref_Key"]),
            "customer_ref": counterparty if is_ref(counterparty) else None,
            "ordered_at": self._when(record.get(f.date)),
            "status": status,
            "status_label": label[:500],
            "total": self._money(record.get(f.amount), record.get(f.currency), codes),
        }

    def _order_select(self) -> list[str | None]:
        f = self.settings.order_fields
        return [
            "Ref_Key",
            "DeletionMark",
            "Posted",
            f.number,
            f.date,
            f.counterparty,
            f.status,
            f.amount,
            f.currency,
        ]

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        if not is_ref(customer_ref.strip()) or limit <= 0:
            return []
        s = self.settings
        f = s.order_fields
        rows = await self.odata.collect(
            s.orders,
            "orders",
            "order_fields",
            where=f"{f.counterparty} eq {guid(customer_ref.strip())} and DeletionMark eq false",
            orderby=f"{f.date} desc",
            select=self._order_select(),
            want=limit,
        )
        codes = await self._currencies(row.get(f.currency) for row in rows)
        return [OrderSummary(**self._summary_fields(row, codes)) for row in rows]

    async def _order_by_number(self, typed: str) -> Record | None:
        s = self.settings
        f = s.order_fields
        found = self.number_pattern.search(typed.strip().upper()[:MAX_TYPED])
        if found is None:
            return None
        token = found.group(0)

        def keep(row: Record) -> bool:
            return live(row) and same_number(token, str(row.get(f.number) or ""))

        exact = await self.odata.collect(
            s.orders,
            "orders",
            "order_fields",
            where=f"{f.number} eq {literal(token)} and DeletionMark eq false",
            orderby=f"{f.date} desc",
            keep=keep,
            want=1,
        )
        if exact:
            return exact[0]
        prefix, digits = split_number(token)
        if not digits:
            return None
        clauses = [f"substringof({literal(digits.lstrip('0') or '0')}, {f.number})"]
        if prefix:
            clauses.append(f"substringof({literal(prefix)}, {f.number})")
        candidates = await self.odata.collect(
            s.orders,
            "orders",
            "order_fields",
            where=" and ".join([*clauses, "DeletionMark eq false"]),
            orderby=f"{f.date} desc",
            keep=keep,
            want=1,
            page=self.settings.page_size,
            max_pages=ORDER_SEARCH_PAGES,
        )
        return candidates[0] if candidates else None

    async def do_get_order(self, number: str) -> Order | None:
        s = self.settings
        f = s.order_fields
        record = await self._order_by_number(number)
        if record is None:
            raise ErpNotFound(f"no order numbered {number!r} in 1C")
        lines = [
            line
            for line in record.get(f.lines) or []
            if isinstance(line, dict) and not (f.line_cancelled and line.get(f.line_cancelled))
        ]
        products_task = asyncio.ensure_future(
            self.odata.by_keys(
                s.products,
                (line.get(f.product) for line in lines),
                "products",
                "product_fields",
                select=[s.product_fields.sku, s.product_fields.name, s.product_fields.code],
            )
        )
        invoices_task = asyncio.ensure_future(self._order_invoices(record))
        async with _cancelling(products_task, invoices_task):
            products, invoices = await asyncio.gather(products_task, invoices_task)
        codes = await self._currencies(
            [record.get(f.currency), *(row.get(s.invoice_fields.currency) for row in invoices)]
        )
        summary = self._summary_fields(record, codes)
        number_of = {str(record["Ref_Key"]).lower(): summary["number"]}
        dues = await self._amounts_due(invoices)
        billed = tuple(self._invoice(row, codes, number_of, dues) for row in invoices)
        shipments = tuple(self._shipment(row) for row in invoices if row.get("Posted"))
        return Order(
            **summary,
            payment_status=_payment_status(billed, dues is not None),
            lines=tuple(
                self._line(line, products, record.get(f.currency), codes) for line in lines
            ),
            shipments=shipments,
            invoices=billed,
        )

    def _line(
        self,
        line: Record,
        products: Mapping[str, Record],
        currency_ref: object,
        codes: Mapping[str, str],
    ) -> OrderLine:
        f = self.settings.order_fields
        pf = self.settings.product_fields
        product_ref = line.get(f.product)
        product = products.get(product_ref.lower()) if isinstance(product_ref, str) else None
        sku = name = ""
        if product is not None:
            sku = str(product.get(pf.sku) or product.get(pf.code) or "").strip()
            name = str(product.get(pf.name) or "").strip()
        return OrderLine(
            sku=sku[:500] or None,
            name=(name or str(product_ref or "?"))[:500],
            quantity=_decimal(line.get(f.quantity)) or Decimal(0),
            unit_price=self._money(line.get(f.price), currency_ref, codes),
            total=self._money(line.get(f.line_amount), currency_ref, codes),
        )

    # --- invoices ---------------------------------------------------------------------------------

    def _order_refs_of(self, invoice: Record) -> set[str]:
        """The orders an invoice refers to, on the document or on its lines."""
        fi = self.settings.invoice_fields
        places: list[Mapping[str, Any]] = [invoice]
        lines = invoice.get(fi.lines)
        if isinstance(lines, list):
            places.extend(line for line in lines if isinstance(line, dict))
        return {
            str(place[name]).lower()
            for place in places
            for name in fi.orders
            if is_ref(place.get(name))
        }

    async def _order_invoices(self, order: Record) -> list[Record]:
        """The invoices of an order: the counterparty's, from the order's date on, that refer
        to it."""
        s = self.settings
        fi = s.invoice_fields
        ref = str(order["Ref_Key"]).lower()
        counterparty = order.get(s.order_fields.counterparty)
        clauses = ["DeletionMark eq false"]
        if is_ref(counterparty):
            clauses.insert(0, f"{fi.counterparty} eq {guid(str(counterparty))}")
        since = order.get(s.order_fields.date)
        if isinstance(since, str) and self._when(since) is not None:
            clauses.insert(1, f"{fi.date} ge datetime'{since[:19]}'")
        return await self.odata.collect(
            s.invoices,
            "invoices",
            "invoice_fields",
            where=" and ".join(clauses),
            orderby=f"{fi.date} desc",
            keep=lambda row: live(row) and ref in self._order_refs_of(row),
            want=INVOICES_LIMIT,
            page=self.settings.page_size,
            max_pages=ORDER_SEARCH_PAGES,
        )

    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]:
        if not is_ref(customer_ref.strip()):
            return []
        s = self.settings
        fi = s.invoice_fields
        rows = await self.odata.collect(
            s.invoices,
            "invoices",
            "invoice_fields",
            where=f"{fi.counterparty} eq {guid(customer_ref.strip())} and DeletionMark eq false",
            orderby=f"{fi.date} desc",
            want=INVOICES_LIMIT,
        )
        order_refs = {ref for row in rows for ref in self._order_refs_of(row)}
        orders_task = asyncio.ensure_future(
            self.odata.by_keys(
                s.orders, order_refs, "orders", "order_fields", select=[s.order_fields.number]
            )
        )
        codes_task = asyncio.ensure_future(self._currencies(row.get(fi.currency) for row in rows))
        dues_task = asyncio.ensure_future(self._amounts_due(rows))
        async with _cancelling(orders_task, codes_task, dues_task):
            orders, codes, dues = await asyncio.gather(orders_task, codes_task, dues_task)
        number_of = {
            ref: str(order.get(s.order_fields.number) or "").strip()
            for ref, order in orders.items()
        }
        return [self._invoice(row, codes, number_of, dues) for row in rows]

    async def _amounts_due(self, invoices: Sequence[Record]) -> dict[str, Decimal] | None:
        """What is still owed per posted invoice, from the settlements register (an invoice
        without a balance owes nothing); None without the register."""
        register = self.settings.settlements_register
        if register is None:
            return None
        refs = sorted({str(row["Ref_Key"]).lower() for row in invoices if row.get("Posted")})
        dues: dict[str, Decimal] = dict.fromkeys(refs, Decimal(0))
        dimension = register.document.removesuffix("_Key")
        for batch in batches(refs):
            rows = await self.odata.balance(
                register.name,
                " or ".join(f"{register.document} eq {guid(ref)}" for ref in batch),
                [dimension],
                "settlements_register",
                "settlements_register",
            )
            for row in rows:
                ref = row.get(register.document)
                if isinstance(ref, str) and ref.lower() in dues:
                    dues[ref.lower()] += _decimal(row.get(f"{register.resource}Balance")) or 0
        return dues

    def _invoice(
        self,
        record: Record,
        codes: Mapping[str, str],
        order_numbers: Mapping[str, str],
        dues: Mapping[str, Decimal] | None,
    ) -> Invoice:
        fi = self.settings.invoice_fields
        currency = self._currency(record.get(fi.currency), codes)
        total = _decimal(record.get(fi.amount)) or Decimal(0)
        ref = str(record["Ref_Key"]).lower()
        due_at = self._day(record.get(fi.due_date)) if fi.due_date else None
        status = InvoiceStatus.OPEN
        owed = total
        if dues is not None and record.get("Posted"):
            owed = max(dues.get(ref, Decimal(0)), Decimal(0))
            today = self.clock().astimezone(self.zone).date()
            if owed == 0:
                status = InvoiceStatus.PAID
            elif due_at is not None and due_at < today:
                status = InvoiceStatus.OVERDUE
        order_number = next(
            (order_numbers[o] for o in sorted(self._order_refs_of(record)) if order_numbers.get(o)),
            None,
        )
        return Invoice(
            ref=str(record["Ref_Key"]),
            number=str(record.get(fi.number) or "").strip() or str(record["Ref_Key"]),
            order_number=order_number,
            issued_at=self._day(record.get(fi.date)),
            due_at=due_at,
            total=Money(amount=total, currency=currency),
            amount_due=Money(amount=owed, currency=currency),
            status=status,
        )

    def _shipment(self, record: Record) -> Shipment:
        fi = self.settings.invoice_fields
        word = str(record.get(fi.status) or "").strip() if fi.status else ""
        return Shipment(
            ref=str(record["Ref_Key"]),
            status=(word or "posted")[:500],
            shipped_at=self._when(record.get(fi.date)),
        )

    # --- stock and products -------------------------------------------------------------------

    async def _product_by_sku(self, sku: str) -> Record | None:
        s = self.settings
        pf = s.product_fields
        for field in dict.fromkeys((pf.sku, pf.code)):
            rows = await self.odata.collect(
                s.products,
                "products",
                "product_fields",
                where=f"{field} eq {literal(sku)} and DeletionMark eq false",
                orderby=pf.name,
                want=1,
            )
            if rows:
                return rows[0]
        return None

    async def do_stock(self, sku: str) -> Stock | None:
        s = self.settings
        sf = s.stock_fields
        wanted = sku.strip()
        product = await self._product_by_sku(wanted) if wanted else None
        if product is None:
            raise ErpNotFound(f"no product with the SKU {sku!r} in 1C")
        rows = await self.odata.balance(
            s.stock_register,
            f"{sf.product} eq {guid(str(product['Ref_Key']))}",
            [sf.product.removesuffix("_Key"), sf.warehouse.removesuffix("_Key")],
            "stock_register",
            "stock_fields",
        )
        on_hand: dict[str, Decimal] = {}
        reserved: dict[str, Decimal] = {}
        for row in rows:
            warehouse = str(row.get(sf.warehouse) or "").lower()
            on_hand[warehouse] = on_hand.get(warehouse, Decimal(0)) + (
                _decimal(row.get(f"{sf.on_hand}Balance")) or 0
            )
            if sf.reserved:
                reserved[warehouse] = reserved.get(warehouse, Decimal(0)) + (
                    _decimal(row.get(f"{sf.reserved}Balance")) or 0
                )
        names = await self.odata.by_keys(
            s.warehouses, on_hand, "warehouses", select=["Description"]
        )
        levels = []
        for warehouse, quantity in on_hand.items():
            held = reserved.get(warehouse, Decimal(0))
            named = names.get(warehouse, {}).get("Description") or warehouse or "?"
            levels.append(
                StockLevel(
                    warehouse=str(named)[:500],
                    on_hand=quantity,
                    reserved=held,
                    available=quantity - held,
                )
            )
        pf = s.product_fields
        return Stock(
            sku=str(product.get(pf.sku) or product.get(pf.code) or wanted)[:500],
            name=str(product.get(pf.name) or "")[:500],
            levels=tuple(sorted(levels, key=lambda level: level.warehouse)),
        )

    async def do_search_products(self, text: str, limit: int) -> list[Product]:
        s = self.settings
        pf = s.product_fields
        needle = text.strip()[:MAX_TYPED]
        if not needle or limit <= 0:
            return []
        rows = await self.odata.collect(
            s.products,
            "products",
            "product_fields",
            where=(
                f"DeletionMark eq false and (substringof({literal(needle)}, {pf.name}) "
                f"or substringof({literal(needle)}, {pf.sku}))"
            ),
            orderby=pf.name,
            select=["Ref_Key", "DeletionMark", "IsFolder", pf.name, pf.sku, pf.code],
            want=limit,
        )
        return [
            Product(
                ref=str(row["Ref_Key"]),
                sku=str(row.get(pf.sku) or row.get(pf.code) or "").strip()[:500] or None,
                name=str(row.get(pf.name) or "")[:500],
            )
            for row in rows
        ]

    # --- the connection ---------------------------------------------------------------------------

    async def do_check(self) -> str:
        """Signs in and reads one record of every configured object (and the stock
        register's balance), so a wrong name is found now, with its setting."""
        s = self.settings
        objects = [
            (s.counterparties, "counterparties"),
            (s.orders, "orders"),
            (s.invoices, "invoices"),
            (s.products, "products"),
            (s.warehouses, "warehouses"),
            (s.currencies, "currencies"),
        ]
        for entity, setting in objects:
            await self.odata.query(entity, setting, select=["Ref_Key"], top=1)
        sf = s.stock_fields
        await self.odata.balance(
            s.stock_register,
            f"{sf.product} eq {guid(EMPTY_REF)}",
            [sf.warehouse.removesuffix("_Key")],
            "stock_register",
            "stock_fields",
        )
        if s.settlements_register is not None:
            register = s.settlements_register
            await self.odata.balance(
                register.name,
                f"{register.document} eq {guid(EMPTY_REF)}",
                [register.document.removesuffix("_Key")],
                "settlements_register",
                "settlements_register",
            )
        return (
            f"signed in to 1C at {s.url} as {s.username}; "
            f"{len(objects)} objects and the stock register answer"
        )


@asynccontextmanager
async def _cancelling(*tasks: asyncio.Future[Any]) -> AsyncIterator[None]:
    """Requests made side by side: when one fails (or the call times out), the others are
    cancelled rather than left running."""
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()


def _iso_code(record: Mapping[str, Any]) -> str | None:
    """A currency's ISO letter code from its 1C record: the Description when it is one, else
    the numeric ISO code in Code."""
    description = str(record.get("Description") or "").strip().upper()
    if _ISO_LETTERS.match(description):
        return description
    code = _digits(str(record.get("Code") or ""))
    return ISO_NUMERIC.get(code.zfill(3)) if code else None


def _lowered(value: object) -> str:
    return str(value or "").strip().lower()


def _phone_tail(value: object) -> str:
    """The last ten digits of a phone number: a Russian number without +7 or 8."""
    return _digits(str(value or ""))[-10:]


def _payment_status(invoices: Sequence[Invoice], known: bool) -> PaymentStatus:
    """Whether the order's invoices are paid: known only from the settlements register."""
    if not known or not invoices:
        return PaymentStatus.UNKNOWN
    total = sum((invoice.total.amount for invoice in invoices), Decimal(0))
    owed = sum((invoice.amount_due.amount for invoice in invoices), Decimal(0))
    if owed <= 0:
        return PaymentStatus.PAID
    if owed < total:
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNPAID


def build(
    settings: BaseModel | Mapping[str, Any], context: ErpContext, **policy: Any
) -> OneCAdapter:
    """The adapter for validated settings (`context` is not used: 1C holds its own data)."""
    if not isinstance(settings, OneCSettings):
        settings = OneCSettings.model_validate(
            settings if isinstance(settings, Mapping) else settings.model_dump()
        )
    return OneCAdapter(settings, **policy)


KIND = ErpKind(
    name="onec",
    label="1C:Enterprise",
    settings_model=OneCSettings,
    secret_fields=frozenset({"password"}),
    build=build,
)
