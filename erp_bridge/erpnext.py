"""ERPNext (the Frappe framework) behind the ERP bridge: the settings, the adapter's `do_*`
hooks (what is read where) and `KIND`. What ERPNext's documents mean in `erp_bridge.models` is
`erp_bridge.erpnext_mapping`.

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
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.logfields import log_fields
from erp_bridge import erpnext_mapping
from erp_bridge.base import (
    ErpAdapter,
    ErpAuthError,
    ErpContext,
    ErpError,
    ErpKind,
)
from erp_bridge.erpnext_client import PAGE_SIZE, Filter, FrappeClient, Row
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    Money,
    Order,
    OrderStatus,
    OrderSummary,
    Product,
    Shipment,
    Stock,
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
        for row in erpnext_mapping.distinct_by_name(rows):
            currency = erpnext_mapping.text_of(row.get("currency")) or ""
            if not erpnext_mapping.ISO_CURRENCY.match(currency):
                return None
            totals[currency] = totals.get(currency, Decimal(0)) + erpnext_mapping.decimal_of(
                row.get("grand_total")
            )
        if len(totals) != 1:
            return None
        ((currency, amount),) = totals.items()
        return Money(amount=amount, currency=currency)

    async def _find_customer(self, query: CustomerQuery) -> Customer | None:
        refs = erpnext_mapping.unique(ref.strip() for ref in query.erp_refs)
        if refs:
            rows = await self.client.rows(
                "Customer",
                fields=erpnext_mapping.CUSTOMER_FIELDS,
                filters=[["name", "in", refs]],
                limit=10,
            )
            by_name = {str(row.get("name")).casefold(): row for row in rows}
            for ref in refs:
                if ref.casefold() in by_name:
                    return erpnext_mapping.customer_of(by_name[ref.casefold()])
        emails = erpnext_mapping.unique(
            variant for email in query.emails for variant in erpnext_mapping.email_variants(email)
        )
        if emails:
            found = await self._customer_where([["email_id", "in", emails]])
            if found is None:
                found = await self._customer_via_contact(
                    [["email_id", "in", emails], ["Contact Email", "email_id", "in", emails]]
                )
            if found is not None:
                return found
        for phone in erpnext_mapping.unique(phone.strip() for phone in query.phones):
            found = await self._customer_by_phone(phone)
            if found is not None:
                return found
        tax_ids = erpnext_mapping.unique(tax_id.strip() for tax_id in query.tax_ids)
        if tax_ids:
            return await self._customer_where([["tax_id", "in", tax_ids]])
        return None

    async def _customer_where(
        self, filters: list[Filter], accept: Callable[[Row], bool] | None = None
    ) -> Customer | None:
        """The newest enabled Customer matching `filters` (and `accept`, if given)."""
        rows = await self.client.rows(
            "Customer",
            fields=erpnext_mapping.CUSTOMER_FIELDS,
            filters=[*filters, ["disabled", "=", 0]],
            order_by="modified desc",
            limit=1 if accept is None else CANDIDATES,
        )
        found = next((row for row in rows if accept is None or accept(row)), None)
        return erpnext_mapping.customer_of(found) if found is not None else None

    async def _customer_by_phone(self, phone: str) -> Customer | None:
        """ERPNext keeps numbers as typed ("+49 170 1234567", "0170/1234567"), and a filter
        compares strings: candidates are asked for with the last digits in order, anything
        between them (`%1%2%3...`), and kept if their digits are the same number."""
        digits = erpnext_mapping.digits_of(phone)
        if len(digits) < erpnext_mapping.MIN_PHONE_DIGITS:
            return None
        like = "%" + "%".join(digits[-erpnext_mapping.MIN_PHONE_DIGITS :]) + "%"
        found = await self._customer_where(
            [["mobile_no", "like", like]],
            accept=lambda row: erpnext_mapping.same_phone(phone, row.get("mobile_no")),
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
                erpnext_mapping.same_phone(phone, number)
                for number in erpnext_mapping.contact_phones(contact)
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
        for name in erpnext_mapping.unique(str(row.get("name") or "") for row in rows):
            contact = await self.client.doc("Contact", name)
            if contact is None or (accept is not None and not accept(contact)):
                continue
            for link in erpnext_mapping.child_rows(contact, "links"):
                if link.get("link_doctype") != "Customer" or not link.get("link_name"):
                    continue
                record = await self.client.doc("Customer", str(link["link_name"]))
                if record is None or erpnext_mapping.decimal_of(record.get("disabled")):
                    continue
                customer = erpnext_mapping.customer_of(record)
                email = customer.email or erpnext_mapping.text_of(contact.get("email_id"))
                phone = (
                    customer.phone
                    or erpnext_mapping.text_of(contact.get("mobile_no"))
                    or erpnext_mapping.text_of(contact.get("phone"))
                )
                return customer.model_copy(update={"email": email, "phone": phone})
        return None

    # --- orders ---------------------------------------------------------------------------

    def _company_filter(self) -> list[Filter]:
        return [["company", "=", self.settings.company]] if self.settings.company else []

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        rows = await self.client.rows(
            "Sales Order",
            fields=erpnext_mapping.ORDER_FIELDS,
            filters=[["customer", "=", customer_ref], *self._company_filter()],
            order_by="transaction_date desc, creation desc",
            limit=max(limit, 0),
        )
        return [erpnext_mapping.summary_of(row) for row in erpnext_mapping.distinct_by_name(rows)]

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
        summary = erpnext_mapping.summary_of(doc)
        currency = (
            summary.total.currency
            if summary.total
            else erpnext_mapping.text_of(doc.get("currency"))
        )
        lines = tuple(
            erpnext_mapping.line_of(item, currency)
            for item in erpnext_mapping.child_rows(doc, "items")
        )
        shipments = await self._shipments(number)
        invoices = tuple(
            erpnext_mapping.invoice_of(row, number)
            for row in erpnext_mapping.distinct_by_name(
                await self.client.rows(
                    "Sales Invoice",
                    fields=erpnext_mapping.INVOICE_FIELDS,
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
            payment_status=erpnext_mapping.order_payment(doc, invoices),
            tracking_number=latest.tracking_number if latest else None,
            tracking_url=latest.tracking_url if latest else None,
            lines=lines,
            shipments=shipments,
            invoices=invoices,
        )

    async def _shipments(self, number: str) -> tuple[Shipment, ...]:
        """The order's submitted delivery notes, newest first, with their Shipment's
        tracking where one was made."""
        notes = erpnext_mapping.distinct_by_name(
            await self.client.rows(
                "Delivery Note",
                fields=erpnext_mapping.DELIVERY_FIELDS,
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
                fields=erpnext_mapping.SHIPMENT_FIELDS,
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
        number = erpnext_mapping.text_of(parcel.get("awb_number")) or erpnext_mapping.text_of(
            note.get("lr_no")
        )
        url = erpnext_mapping.text_of(parcel.get("tracking_url")) or self._tracking_url(number)
        status = (
            erpnext_mapping.text_of(parcel.get("tracking_status"))
            or erpnext_mapping.text_of(parcel.get("status"))
            or erpnext_mapping.text_of(note.get("status"))
            or "Submitted"
        )
        return Shipment(
            ref=str(note["name"]),
            status=status,
            carrier=erpnext_mapping.text_of(parcel.get("carrier"))
            or erpnext_mapping.text_of(note.get("transporter_name")),
            tracking_number=number,
            tracking_url=url if url and url.startswith(("https://", "http://")) else None,
            shipped_at=erpnext_mapping.local_datetime(
                note.get("posting_date"), note.get("posting_time"), zone
            ),
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
        rows = erpnext_mapping.distinct_by_name(
            await self.client.rows(
                "Sales Invoice",
                fields=erpnext_mapping.INVOICE_FIELDS,
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
        return [erpnext_mapping.invoice_of(row, orders.get(str(row["name"]))) for row in rows]

    async def _invoice_orders(self, names: list[str]) -> dict[str, str]:
        """Each invoice's (first) Sales Order, from its items: a list does not show child
        rows, so the invoices are read, a few at a time."""
        found: dict[str, str] = {}
        gate = asyncio.Semaphore(PARALLEL_READS)

        async def read(name: str) -> None:
            async with gate:
                doc = await self.client.doc("Sales Invoice", name)
            orders = [
                erpnext_mapping.text_of(item.get("sales_order"))
                for item in erpnext_mapping.child_rows(doc or {}, "items")
            ]
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
                return Stock(sku=sku, name=erpnext_mapping.text_of(item.get("item_name")) or "")
            filters.append(["warehouse", "in", warehouses])
        bins = await self.client.rows(
            "Bin",
            fields=["warehouse", "actual_qty", "reserved_qty", "projected_qty"],
            filters=filters,
            order_by="warehouse asc",
            limit=STOCK_LIMIT,
        )
        levels = [erpnext_mapping.level_of(row) for row in bins if row.get("warehouse")]
        if warehouses is not None:
            rank = {name: index for index, name in enumerate(warehouses)}
            levels.sort(key=lambda level: rank.get(level.warehouse, len(rank)))
        return Stock(
            sku=str(item.get("item_code") or sku),
            name=erpnext_mapping.text_of(item.get("item_name")) or "",
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
            for row in erpnext_mapping.distinct_by_name(rows)
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
            if (
                price is None
                and fallback
                and erpnext_mapping.decimal_of(row.get("standard_rate")) > 0
            ):
                price = erpnext_mapping.money_of(row.get("standard_rate"), fallback)
            products.append(
                Product(
                    ref=str(row["name"]),
                    sku=code,
                    name=erpnext_mapping.text_of(row.get("item_name")) or code,
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
            money = erpnext_mapping.money_of(row.get("price_list_rate"), row.get("currency"))
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
            currency = erpnext_mapping.text_of((company or {}).get("default_currency"))
            self._company_currency = (
                currency if currency and erpnext_mapping.ISO_CURRENCY.match(currency) else None
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
