"""ERPNext (the Frappe framework) behind the ERP bridge: the settings, the adapter's `do_*`
hooks (what is read where), the mapping of ERPNext's documents onto `erp_bridge.models`, and
`KIND`.

The wire (Frappe's REST API: the session, the API keys, lists page by page, Frappe's error
bodies as `ErpError`s) is `erp_bridge.erpnext_client`. A filter on a child table returns a
parent once per matching child row: the lists here are de-duplicated by name.

What is read where:

- customer: `Customer` by name (the ERP reference), then by its `email_id` / `mobile_no` /
  `tax_id`; else a `Contact` with that email or phone (its own fields, or its `Contact Email`
  / `Contact Phone` rows) linked to a Customer through its `links` table (`Dynamic Link`,
  `link_doctype` = Customer), whose Customer is then read. `customer_group` is the tier;
  the turnover is the sum of the customer's submitted `Sales Invoice`s' `grand_total`
  (returns are negative) posted within the last 12 months, if all in one currency.
  Emails are compared as given and lower-cased; phones, which ERPNext keeps as typed, are
  looked for by their last seven digits (`like "%1%2%3%4%5%6%7%"`) and compared digit by
  digit here.
- orders: `Sales Order` (`status` and `docstatus`, `per_delivered`, `advance_paid`);
  shipments: submitted `Delivery Note`s whose items point at the order
  (`against_sales_order`), with the transporter (`transporter_name`) and its receipt number
  (`lr_no`) as carrier and tracking number, or better, a `Shipment` made for that delivery
  note (`carrier`, `awb_number`, `tracking_url`, `tracking_status`); invoices: `Sales
  Invoice`s whose items point at the order (`sales_order`), with `outstanding_amount`.
- stock: `Bin` rows of the item (`actual_qty`, `reserved_qty`; available = actual - reserved)
  in the configured warehouses, or the company's, or all.
- products: sales `Item`s whose code or name holds the text; the price is the item's selling
  `Item Price` (no customer-specific ones), else its `standard_rate` in the company's currency.

Statuses become `OrderStatus` / `PaymentStatus` / `InvoiceStatus`; the ERP's own word stays
in `status_label`. The site's time zone (`frappe.client.get_time_zone`) dates deliveries; the
check is `frappe.auth.get_logged_user`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.logfields import log_fields
from erp_bridge.base import (
    ErpAdapter,
    ErpAuthError,
    ErpContext,
    ErpError,
    ErpKind,
    ErpUnavailable,
)
from erp_bridge.erpnext_client import PAGE_SIZE, Filter, FrappeClient, Row
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
from erp_bridge.patterns import compile_pattern

log = logging.getLogger(__name__)

DEFAULT_ORDER_NUMBER = r"SAL-ORD-\d{4}-\d{5}"
TRACKING_PLACEHOLDER = "{tracking_number}"
INVOICE_LIMIT = 50  # a customer's newest invoices
TURNOVER_INVOICES = 500  # the newest invoices of 12 months summed into a turnover
TURNOVER_DAYS = 365
STOCK_LIMIT = 1000  # warehouses of one item
LINKED_LIMIT = 50  # delivery notes or invoices of one order
PARCEL_LOOKUPS = 5  # delivery notes of one order whose Shipment is looked for
PARALLEL_READS = 4  # documents read at once (an invoice list's order numbers)
CANDIDATES = 20  # customers or contacts looked at for one email or phone
MIN_PHONE_DIGITS = 7


# --- settings -----------------------------------------------------------------------------------


class ErpNextSettings(BaseModel):
    """One ERPNext site, as an admin enters it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=500,
        description="the site's address, e.g. https://erp.example.com",
    )
    api_key: str = Field(min_length=1, max_length=200, description="the API user's API key")
    api_secret: str = Field(min_length=1, max_length=200, description="secret", repr=False)
    company: str | None = Field(
        default=None,
        max_length=200,
        description="only this company's orders, invoices and warehouses (default: all)",
    )
    warehouses: list[str] | None = Field(
        default=None,
        max_length=200,
        description="the warehouses whose stock is reported (default: all, or the company's)",
    )
    order_number_pattern: str = Field(
        default=DEFAULT_ORDER_NUMBER,
        max_length=200,
        description="a regular expression matching the Sales Order numbers (names)",
    )
    tracking_url_template: str | None = Field(
        default=None,
        max_length=2000,
        description="a carrier's tracking page, {tracking_number} standing for the number",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("the site's address must be an http:// or https:// URL")
        return value

    @field_validator("company")
    @classmethod
    def _company(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @field_validator("warehouses")
    @classmethod
    def _warehouses(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = list(dict.fromkeys(name.strip() for name in value if name.strip()))
        if not names:
            raise ValueError("name at least one warehouse, or leave warehouses unset for all")
        return names

    @field_validator("order_number_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        compile_pattern(value)
        return value

    @field_validator("tracking_url_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if TRACKING_PLACEHOLDER not in value:
            raise ValueError(f"the template must hold {TRACKING_PLACEHOLDER}")
        if not value.startswith(("https://", "http://")):
            raise ValueError("the template must be an http:// or https:// URL")
        return value


# --- the adapter --------------------------------------------------------------------------------


class ErpNextAdapter(ErpAdapter):
    """An ERPNext site through its REST API (see the module's docstring)."""

    kind = "erpnext"

    def __init__(
        self, settings: ErpNextSettings, *, page_size: int = PAGE_SIZE, **policy: Any
    ) -> None:
        super().__init__(**policy)
        self.settings = settings
        self.client = FrappeClient(
            settings.url,
            settings.api_key,
            settings.api_secret,
            timeout=self.timeout,
            page_size=page_size,
        )
        self.order_number = compile_pattern(settings.order_number_pattern)
        self._zone: ZoneInfo | None = None
        self._zone_known = False
        self._company_currency: str | None = None
        self._company_currency_known = False
        self._shipments_readable = True

    @property
    def page_size(self) -> int:
        """Rows per list request (the client's)."""
        return self.client.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.client.page_size = value

    async def close(self) -> None:
        await self.client.close()

    # --- customers ------------------------------------------------------------------------

    async def do_find_customer(self, query: CustomerQuery) -> Customer | None:
        customer = await self._find_customer(query)
        if customer is None:
            return None
        return customer.model_copy(update={"turnover": await self._turnover(customer.ref)})

    async def _turnover(self, customer: str) -> Money | None:
        """The customer's submitted Sales Invoices (returns, which are negative, included)
        posted within the last 12 months, summed here: Frappe's list API can sum on the
        server, but the syntax changed in v16 (`{"SUM": ...}` for `"sum(...) as ..."`), so
        the rows are read (at most TURNOVER_INVOICES, the newest: more reads as at least
        their sum). None without any, or when they are in several currencies."""
        since = (self.clock() - timedelta(days=TURNOVER_DAYS)).date().isoformat()
        rows = await self.client.rows(
            "Sales Invoice",
            fields=["name", "grand_total", "currency"],
            filters=[
                ["customer", "=", customer],
                ["docstatus", "=", 1],
                ["posting_date", ">=", since],
                *self._company_filter(),
            ],
            order_by="posting_date desc, creation desc",
            limit=TURNOVER_INVOICES,
        )
        totals: dict[str, Decimal] = {}
        for row in _distinct(rows):
            currency = _text(row.get("currency")) or ""
            if not _ISO_CURRENCY.match(currency):
                return None
            totals[currency] = totals.get(currency, Decimal(0)) + _number(row.get("grand_total"))
        if len(totals) != 1:
            return None
        ((currency, amount),) = totals.items()
        return Money(amount=amount, currency=currency)

    async def _find_customer(self, query: CustomerQuery) -> Customer | None:
        refs = _unique(ref.strip() for ref in query.erp_refs)
        if refs:
            rows = await self.client.rows(
                "Customer", fields=CUSTOMER_FIELDS, filters=[["name", "in", refs]], limit=10
            )
            by_name = {str(row.get("name")).casefold(): row for row in rows}
            for ref in refs:
                if ref.casefold() in by_name:
                    return _customer(by_name[ref.casefold()])
        emails = _unique(variant for email in query.emails for variant in _email_variants(email))
        if emails:
            found = await self._customer_where([["email_id", "in", emails]])
            if found is None:
                found = await self._customer_via_contact(
                    [["email_id", "in", emails], ["Contact Email", "email_id", "in", emails]]
                )
            if found is not None:
                return found
        for phone in _unique(phone.strip() for phone in query.phones):
            found = await self._customer_by_phone(phone)
            if found is not None:
                return found
        tax_ids = _unique(tax_id.strip() for tax_id in query.tax_ids)
        if tax_ids:
            return await self._customer_where([["tax_id", "in", tax_ids]])
        return None

    async def _customer_where(
        self, filters: list[Filter], accept: Callable[[Row], bool] | None = None
    ) -> Customer | None:
        """The newest enabled Customer matching `filters` (and `accept`, if given)."""
        rows = await self.client.rows(
            "Customer",
            fields=CUSTOMER_FIELDS,
            filters=[*filters, ["disabled", "=", 0]],
            order_by="modified desc",
            limit=1 if accept is None else CANDIDATES,
        )
        found = next((row for row in rows if accept is None or accept(row)), None)
        return _customer(found) if found is not None else None

    async def _customer_by_phone(self, phone: str) -> Customer | None:
        """ERPNext keeps numbers as typed ("+49 170 1234567", "0170/1234567"), and a filter
        compares strings: candidates are asked for with the last digits in order, anything
        between them (`%1%2%3...`), and kept if their digits are the same number."""
        digits = _digits(phone)
        if len(digits) < MIN_PHONE_DIGITS:
            return None
        like = "%" + "%".join(digits[-MIN_PHONE_DIGITS:]) + "%"
        found = await self._customer_where(
            [["mobile_no", "like", like]],
            accept=lambda row: _same_phone(phone, row.get("mobile_no")),
        )
        if found is not None:
            return found
        return await self._customer_via_contact(
            [
                ["phone", "like", like],
                ["mobile_no", "like", like],
                ["Contact Phone", "phone", "like", like],
            ],
            accept=lambda contact: any(
                _same_phone(phone, number) for number in _contact_phones(contact)
            ),
        )

    async def _customer_via_contact(
        self, or_filters: list[Filter], accept: Callable[[Row], bool] | None = None
    ) -> Customer | None:
        """The Customer linked to a Contact matching any of `or_filters` (and `accept`)."""
        rows = await self.client.rows(
            "Contact",
            fields=["name"],
            filters=[["Dynamic Link", "link_doctype", "=", "Customer"]],
            or_filters=or_filters,
            order_by="modified desc",
            limit=CANDIDATES,
        )
        for name in _unique(str(row.get("name") or "") for row in rows):
            contact = await self.client.doc("Contact", name)
            if contact is None or (accept is not None and not accept(contact)):
                continue
            for link in _table(contact, "links"):
                if link.get("link_doctype") != "Customer" or not link.get("link_name"):
                    continue
                record = await self.client.doc("Customer", str(link["link_name"]))
                if record is None or _number(record.get("disabled")):
                    continue
                customer = _customer(record)
                email = customer.email or _text(contact.get("email_id"))
                phone = (
                    customer.phone or _text(contact.get("mobile_no")) or _text(contact.get("phone"))
                )
                return customer.model_copy(update={"email": email, "phone": phone})
        return None

    # --- orders ---------------------------------------------------------------------------

    def _company_filter(self) -> list[Filter]:
        return [["company", "=", self.settings.company]] if self.settings.company else []

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        rows = await self.client.rows(
            "Sales Order",
            fields=ORDER_FIELDS,
            filters=[["customer", "=", customer_ref], *self._company_filter()],
            order_by="transaction_date desc, creation desc",
            limit=max(limit, 0),
        )
        return [_summary(row) for row in _distinct(rows)]

    async def do_get_order(self, number: str) -> Order | None:
        number = number.strip()
        if not self.order_number.fullmatch(number):
            if not self.order_number.fullmatch(number.upper()):
                return None  # not one of ours: not worth a request
            number = number.upper()  # "sal-ord-2026-00012" as typed in a chat
        doc = await self.client.doc("Sales Order", number)
        if doc is None:
            return None
        if self.settings.company and doc.get("company") != self.settings.company:
            return None
        summary = _summary(doc)
        currency = summary.total.currency if summary.total else _text(doc.get("currency"))
        lines = tuple(_line(item, currency) for item in _table(doc, "items"))
        shipments = await self._shipments(number)
        invoices = tuple(
            _invoice(row, number)
            for row in _distinct(
                await self.client.rows(
                    "Sales Invoice",
                    fields=INVOICE_FIELDS,
                    filters=[
                        ["Sales Invoice Item", "sales_order", "=", number],
                        ["docstatus", "!=", 0],
                    ],
                    order_by="posting_date desc, creation desc",
                    limit=LINKED_LIMIT,
                )
            )
        )
        status = summary.status
        if status is OrderStatus.DELIVERED and any(
            shipment.status == "In Progress" for shipment in shipments
        ):
            status = OrderStatus.SHIPPED  # left the warehouse, the carrier has not delivered
        latest = shipments[0] if shipments else None
        return Order(
            **summary.model_dump(
                exclude={"status", "payment_status", "tracking_number", "tracking_url"}
            ),
            status=status,
            payment_status=_order_payment(doc, invoices),
            tracking_number=latest.tracking_number if latest else None,
            tracking_url=latest.tracking_url if latest else None,
            lines=lines,
            shipments=shipments,
            invoices=invoices,
        )

    async def _shipments(self, number: str) -> tuple[Shipment, ...]:
        """The order's submitted delivery notes, newest first, with their Shipment's
        tracking where one was made."""
        notes = _distinct(
            await self.client.rows(
                "Delivery Note",
                fields=DELIVERY_FIELDS,
                filters=[
                    ["Delivery Note Item", "against_sales_order", "=", number],
                    ["docstatus", "=", 1],
                    ["is_return", "=", 0],
                ],
                order_by="posting_date desc, posting_time desc",
                limit=LINKED_LIMIT,
            )
        )
        zone = await self._site_zone() if notes else None
        shipments = []
        for index, note in enumerate(notes):
            # A Shipment is looked for per delivery note (a list cannot say which note a
            # Shipment's child row names): for the newest few; older ones keep the note's.
            parcel = await self._parcel(str(note["name"])) if index < PARCEL_LOOKUPS else None
            shipments.append(self._shipment(note, parcel, zone))
        return tuple(shipments)

    async def _parcel(self, delivery_note: str) -> Row | None:
        """The newest Shipment made for a delivery note (None if none, or if the API user
        may not read Shipments: they are for System Managers by default)."""
        if not self._shipments_readable:
            return None
        try:
            rows = await self.client.rows(
                "Shipment",
                fields=SHIPMENT_FIELDS,
                filters=[
                    ["Shipment Delivery Note", "delivery_note", "=", delivery_note],
                    ["docstatus", "!=", 2],
                ],
                order_by="creation desc",
                limit=1,
            )
        except ErpAuthError as exc:
            self._shipments_readable = False
            log.warning(
                "ERPNext Shipments are not readable: tracking comes from delivery notes only",
                extra=log_fields(erp=self.kind, error=str(exc)),
            )
            return None
        return rows[0] if rows else None

    def _shipment(self, note: Row, parcel: Row | None, zone: ZoneInfo | None) -> Shipment:
        parcel = parcel or {}
        number = _text(parcel.get("awb_number")) or _text(note.get("lr_no"))
        url = _text(parcel.get("tracking_url")) or self._tracking_url(number)
        status = (
            _text(parcel.get("tracking_status"))
            or _text(parcel.get("status"))
            or _text(note.get("status"))
            or "Submitted"
        )
        return Shipment(
            ref=str(note["name"]),
            status=status,
            carrier=_text(parcel.get("carrier")) or _text(note.get("transporter_name")),
            tracking_number=number,
            tracking_url=url if url and url.startswith(("https://", "http://")) else None,
            shipped_at=_local_datetime(note.get("posting_date"), note.get("posting_time"), zone),
            delivered_at=None,
        )

    def _tracking_url(self, number: str | None) -> str | None:
        template = self.settings.tracking_url_template
        if not template or not number:
            return None
        return template.replace(TRACKING_PLACEHOLDER, quote(number, safe=""))

    async def _site_zone(self) -> ZoneInfo | None:
        """The site's time zone (delivery notes carry local dates and times); None if the
        site does not say."""
        if not self._zone_known:
            try:
                answer = await self.client.method("frappe.client.get_time_zone", "the time zone")
            except ErpError:
                answer = None
            name = answer.get("time_zone") if isinstance(answer, dict) else None
            try:
                self._zone = ZoneInfo(name) if isinstance(name, str) and name else None
            except (ZoneInfoNotFoundError, ValueError):
                self._zone = None
            self._zone_known = True
        return self._zone

    # --- invoices -------------------------------------------------------------------------

    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]:
        rows = _distinct(
            await self.client.rows(
                "Sales Invoice",
                fields=INVOICE_FIELDS,
                filters=[
                    ["customer", "=", customer_ref],
                    ["docstatus", "!=", 0],
                    *self._company_filter(),
                ],
                order_by="posting_date desc, creation desc",
                limit=INVOICE_LIMIT,
            )
        )
        orders = await self._invoice_orders([str(row["name"]) for row in rows])
        return [_invoice(row, orders.get(str(row["name"]))) for row in rows]

    async def _invoice_orders(self, names: list[str]) -> dict[str, str]:
        """Each invoice's (first) Sales Order, from its items: a list does not show child
        rows, so the invoices are read, a few at a time."""
        found: dict[str, str] = {}
        gate = asyncio.Semaphore(PARALLEL_READS)

        async def read(name: str) -> None:
            async with gate:
                doc = await self.client.doc("Sales Invoice", name)
            orders = [_text(item.get("sales_order")) for item in _table(doc or {}, "items")]
            first = next((order for order in orders if order), None)
            if first:
                found[name] = first

        try:
            async with asyncio.TaskGroup() as group:
                for name in names:
                    group.create_task(read(name))
        except ExceptionGroup as failed:  # the first failure, as the caller knows errors
            raise failed.exceptions[0] from None
        return found

    # --- stock and products ---------------------------------------------------------------

    async def _warehouses(self) -> list[str] | None:
        """The warehouses to report: configured, or the company's, or None for all."""
        if self.settings.warehouses is not None:
            return list(self.settings.warehouses)
        if not self.settings.company:
            return None
        rows = await self.client.rows(
            "Warehouse",
            fields=["name"],
            filters=[["company", "=", self.settings.company], ["is_group", "=", 0]],
            order_by="name asc",
            limit=STOCK_LIMIT,
        )
        return [str(row["name"]) for row in rows if row.get("name")]

    async def do_stock(self, sku: str) -> Stock | None:
        sku = sku.strip()
        if not sku:
            return None
        # Items are named by their code, unless the site names them by a series.
        items = await self.client.rows(
            "Item",
            fields=["name", "item_code", "item_name"],
            or_filters=[["name", "=", sku], ["item_code", "=", sku]],
            limit=1,
        )
        if not items:
            return None
        item = items[0]
        warehouses = await self._warehouses()
        filters: list[Filter] = [["item_code", "=", item.get("item_code") or sku]]
        if warehouses is not None:
            if not warehouses:
                return Stock(sku=sku, name=_text(item.get("item_name")) or "")
            filters.append(["warehouse", "in", warehouses])
        bins = await self.client.rows(
            "Bin",
            fields=["warehouse", "actual_qty", "reserved_qty", "projected_qty"],
            filters=filters,
            order_by="warehouse asc",
            limit=STOCK_LIMIT,
        )
        levels = [_level(row) for row in bins if row.get("warehouse")]
        if warehouses is not None:
            rank = {name: index for index, name in enumerate(warehouses)}
            levels.sort(key=lambda level: rank.get(level.warehouse, len(rank)))
        return Stock(
            sku=str(item.get("item_code") or sku),
            name=_text(item.get("item_name")) or "",
            levels=tuple(levels),
        )

    async def do_search_products(self, text: str, limit: int) -> list[Product]:
        words = text.replace("%", "").strip()
        if not words or limit <= 0:
            return []
        like = f"%{words}%"
        rows = await self.client.rows(
            "Item",
            fields=["name", "item_code", "item_name", "standard_rate"],
            filters=[["disabled", "=", 0], ["is_sales_item", "=", 1], ["has_variants", "=", 0]],
            or_filters=[["item_code", "like", like], ["item_name", "like", like]],
            order_by="item_name asc",
            limit=limit,
        )
        # LIKE's `_` matches any one character; keep what really holds the text.
        needle = words.casefold()
        rows = [
            row
            for row in _distinct(rows)
            if needle in str(row.get("item_code") or "").casefold()
            or needle in str(row.get("item_name") or "").casefold()
        ]
        prices = await self._selling_prices([str(row.get("item_code") or "") for row in rows])
        fallback = (
            await self._currency()
            if any(row.get("item_code") not in prices for row in rows)
            else None
        )
        products = []
        for row in rows:
            code = str(row.get("item_code") or row["name"])
            price = prices.get(code)
            if price is None and fallback and _number(row.get("standard_rate")) > 0:
                price = _money(row.get("standard_rate"), fallback)
            products.append(
                Product(
                    ref=str(row["name"]),
                    sku=code,
                    name=_text(row.get("item_name")) or code,
                    price=price,
                )
            )
        return products

    async def _selling_prices(self, codes: list[str]) -> dict[str, Money]:
        """Each item's newest selling Item Price that is not a customer's own."""
        codes = [code for code in codes if code]
        if not codes:
            return {}
        rows = await self.client.rows(
            "Item Price",
            fields=["item_code", "price_list", "price_list_rate", "currency"],
            filters=[
                ["item_code", "in", codes],
                ["selling", "=", 1],
                ["customer", "is", "not set"],
            ],
            order_by="modified desc",
            limit=len(codes) * 5,
        )
        prices: dict[str, Money] = {}
        for row in rows:
            code = str(row.get("item_code") or "")
            money = _money(row.get("price_list_rate"), row.get("currency"))
            if code and money is not None and code not in prices:
                prices[code] = money
        return prices

    async def _currency(self) -> str | None:
        """The company's currency (for `standard_rate`, which has none); None without a
        company."""
        if not self._company_currency_known and self.settings.company:
            try:
                company = await self.client.doc("Company", self.settings.company)
            except ErpAuthError:
                company = None  # the API user may not read Companies: no fallback price
            currency = _text((company or {}).get("default_currency"))
            self._company_currency = (
                currency if currency and _ISO_CURRENCY.match(currency) else None
            )
            self._company_currency_known = True
        return self._company_currency

    # --- the check ------------------------------------------------------------------------

    async def do_check(self) -> str:
        user = await self.client.method("frappe.auth.get_logged_user", "the signed-in user")
        if not isinstance(user, str) or not user or user == "Guest":
            raise ErpAuthError("ERPNext did not sign the API key in (it answers as a guest)")
        line = f"signed in to ERPNext at {self.settings.url} as {user}"
        if self.settings.company:
            if await self.client.doc("Company", self.settings.company) is None:
                raise ErpError(
                    f"ERPNext at {self.settings.url} has no company {self.settings.company!r}"
                )
            line += f", company {self.settings.company}"
        return line


# --- the kind -----------------------------------------------------------------------------------


def build(
    settings: ErpNextSettings | Mapping[str, Any], context: ErpContext, **policy: Any
) -> ErpNextAdapter:
    """The adapter for validated settings (`context` is not needed: ERPNext is remote)."""
    if not isinstance(settings, ErpNextSettings):
        settings = ErpNextSettings.model_validate(settings)
    return ErpNextAdapter(settings, **policy)


KIND = ErpKind(
    name="erpnext",
    label="ERPNext",
    settings_model=ErpNextSettings,
    secret_fields=frozenset({"api_secret"}),
    build=build,
)


# --- what is read, and how it maps -----------------------------------------------------------

CUSTOMER_FIELDS = ["name", "customer_name", "email_id", "mobile_no", "tax_id", "customer_group"]
ORDER_FIELDS = [
    "name",
    "customer",
    "transaction_date",
    "status",
    "docstatus",
    "per_delivered",
    "per_billed",
    "advance_paid",
    "grand_total",
    "currency",
]
DELIVERY_FIELDS = [
    "name",
    "status",
    "posting_date",
    "posting_time",
    "transporter_name",
    "lr_no",
]
SHIPMENT_FIELDS = ["name", "status", "carrier", "awb_number", "tracking_url", "tracking_status"]
INVOICE_FIELDS = [
    "name",
    "posting_date",
    "due_date",
    "grand_total",
    "outstanding_amount",
    "currency",
    "status",
    "docstatus",
    "is_return",
]

_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TAGS = re.compile(r"<[^>]+>")


def _customer(row: Row) -> Customer:
    name = str(row.get("name") or "")
    return Customer(
        ref=name,
        name=_text(row.get("customer_name")) or name,
        email=_text(row.get("email_id")),
        phone=_text(row.get("mobile_no")),
        tax_id=_text(row.get("tax_id")),
        tier=_text(row.get("customer_group")),
    )


def _order_status(row: Row) -> OrderStatus:
    """A Sales Order's state in omnicrm's words. ERPNext "delivers" when a delivery note is
    submitted (the goods left the warehouse): fully delivered reads as delivered, partly as
    processing."""
    status = str(row.get("status") or "")
    docstatus = int(_number(row.get("docstatus")))
    delivered = _number(row.get("per_delivered"))
    if docstatus == 2 or status == "Cancelled":
        return OrderStatus.CANCELLED
    if docstatus == 0 or status == "Draft":
        return OrderStatus.DRAFT
    if status in ("Completed", "To Bill") or delivered >= 100:
        return OrderStatus.DELIVERED
    if status in ("To Deliver and Bill", "To Deliver", "To Pay"):
        return OrderStatus.PROCESSING if delivered > 0 else OrderStatus.CONFIRMED
    return OrderStatus.OTHER  # On Hold, Closed before delivery, a status of a newer version


def _summary(row: Row) -> OrderSummary:
    name = str(row.get("name") or "")
    return OrderSummary(
        ref=name,
        number=name,
        customer_ref=_text(row.get("customer")),
        ordered_at=_date(row.get("transaction_date")),
        status=_order_status(row),
        status_label=str(row.get("status") or "")[:500],
        total=_money(row.get("grand_total"), row.get("currency")),
        payment_status=_advance_payment(row),
    )


def _advance_payment(row: Row) -> PaymentStatus:
    """What a Sales Order alone says of payment: its advance (invoices say the rest)."""
    if int(_number(row.get("docstatus"))) != 1:
        return PaymentStatus.UNKNOWN
    total, advance = _number(row.get("grand_total")), _number(row.get("advance_paid"))
    if total > 0 and advance >= total:
        return PaymentStatus.PAID
    if advance > 0:
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNKNOWN


def _order_payment(doc: Row, invoices: Sequence[Invoice]) -> PaymentStatus:
    """An opened order's payment, from its advance and its invoices."""
    status = _advance_payment(doc)
    if int(_number(doc.get("docstatus"))) != 1 or status is PaymentStatus.PAID:
        return status
    issued = [invoice for invoice in invoices if invoice.status is not InvoiceStatus.CANCELLED]
    if not issued:
        return PaymentStatus.PARTIAL if status is PaymentStatus.PARTIAL else PaymentStatus.UNPAID
    due = sum((invoice.amount_due.amount for invoice in issued), Decimal(0))
    billed = sum((invoice.total.amount for invoice in issued), Decimal(0))
    if due <= 0:
        fully_billed = _number(doc.get("per_billed")) >= 100
        return PaymentStatus.PAID if fully_billed else PaymentStatus.PARTIAL
    if due < billed or status is PaymentStatus.PARTIAL:
        return PaymentStatus.PARTIAL
    return PaymentStatus.UNPAID


def _line(item: Row, currency: str | None) -> OrderLine:
    code = _text(item.get("item_code"))
    return OrderLine(
        sku=code,
        name=_text(item.get("item_name")) or code or "",
        quantity=_number(item.get("qty")),
        unit_price=_money(item.get("rate"), currency),
        total=_money(item.get("amount"), currency),
    )


def _invoice_status(row: Row, due: Decimal) -> InvoiceStatus:
    status = str(row.get("status") or "")
    if int(_number(row.get("docstatus"))) == 2 or status == "Cancelled":
        return InvoiceStatus.CANCELLED
    if due <= 0:
        return InvoiceStatus.PAID  # Paid, a Return, Credit Note Issued
    if status.startswith("Overdue"):
        return InvoiceStatus.OVERDUE  # Overdue, Overdue and Discounted
    return InvoiceStatus.OPEN  # Unpaid, Partly Paid, (... and Discounted), Submitted


def _invoice(row: Row, order_number: str | None) -> Invoice:
    currency = _text(row.get("currency")) or ""
    total = _money(row.get("grand_total"), currency)
    if total is None:
        raise ErpUnavailable(f"ERPNext's invoice {row.get('name')} has no usable currency")
    due = max(_number(row.get("outstanding_amount")), Decimal(0))
    name = str(row.get("name") or "")
    return Invoice(
        ref=name,
        number=name,
        order_number=order_number,
        issued_at=_date(row.get("posting_date")),
        due_at=_date(row.get("due_date")),
        total=total,
        amount_due=Money(amount=due, currency=total.currency),
        status=_invoice_status(row, due),
    )


def _level(row: Row) -> StockLevel:
    actual, reserved = _number(row.get("actual_qty")), _number(row.get("reserved_qty"))
    return StockLevel(
        warehouse=str(row["warehouse"]),
        on_hand=actual,
        reserved=reserved,
        available=actual - reserved,
    )


# --- Frappe's values ----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:500] or None


def _number(value: Any) -> Decimal:
    """A Frappe number (JSON floats and ints, sometimes strings) as a Decimal; 0 if empty."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(int(value or 0))
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def _money(amount: Any, currency: Any) -> Money | None:
    if amount is None or not isinstance(currency, str) or not _ISO_CURRENCY.match(currency):
        return None
    return Money(amount=_number(amount), currency=currency)


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _time(value: Any) -> time | None:
    """A Frappe Time ("9:05:07", "14:05:07.123456")."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?", value.strip())
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    try:
        return time(
            int(hours),
            int(minutes),
            int(seconds or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def _local_datetime(day: Any, at: Any, zone: ZoneInfo | None) -> datetime | None:
    """A posting date and time in the site's zone; None when the zone is not known."""
    posted = _date(day)
    if posted is None or zone is None:
        return None
    return datetime.combine(posted, _time(at) or time(0), tzinfo=zone)


def _table(doc: Row, field: str) -> list[Row]:
    rows = doc.get(field)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _distinct(rows: Iterable[Row]) -> list[Row]:
    """Rows once per document (a child-table filter repeats a parent per matching row)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        name = str(row.get("name") or "")
        if name and name not in seen:
            seen.add(name)
            out.append(row)
    return out


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _email_variants(email: str) -> list[str]:
    email = email.strip()
    return _unique([email, email.lower()])


def _digits(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone or ""))


def _significant(digits: str) -> str:
    """A number's digits without an international (00) or trunk (0) prefix."""
    if digits.startswith("00"):
        return digits[2:]
    return digits[1:] if digits.startswith("0") else digits


def _same_phone(wanted: str, stored: Any) -> bool:
    """Whether two spellings are one number: equal digits, or one ends with the other's
    national digits ("+49 30 1234567" and "030 1234567"), seven digits at least."""
    a, b = _significant(_digits(wanted)), _significant(_digits(stored))
    if len(a) < MIN_PHONE_DIGITS or len(b) < MIN_PHONE_DIGITS:
        return False
    return a == b or a.endswith(b) or b.endswith(a)


def _contact_phones(contact: Row) -> list[Any]:
    return [
        contact.get("phone"),
        contact.get("mobile_no"),
        *(row.get("phone") for row in _table(contact, "phone_nos")),
    ]
