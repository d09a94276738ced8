"""Odoo as omnicrm's ERP (Odoo 16 to 19 and later): customers, sales orders with their lines,
deliveries and invoices, stock per warehouse, products.

The wire (JSON-2 or JSON-RPC, errors) is `erp_bridge.odoo_client`; what Odoo's records mean
in the bridge's models (order and payment statuses, shipments, invoices, stock quantities,
money) is `erp_bridge.odoo_mapping`. Here are the settings, which records are read and how
they are found, and `KIND`:

- **customers** are `res.partner` records, looked up by reference (`ref`, or our own id), then
  email (`email_normalized` where the mail module has it, else `email ilike`; the addresses
  are compared in Python, so `_` in an address is no wildcard), then phone
  (`phone`/`mobile` `ilike` on their last 8 digits with `%` between the digits, so that
  "030 1234-5678" is found from "+49 30 12345678"; compared in Python), then VAT number. The
  customer is the match's `commercial_partner_id` (the company a contact orders for); its id
  is `Customer.ref`, its price list (`property_product_pricelist`) the tier, and its
  turnover is the sum of `amount_total_signed` (the company's currency; credit notes
  negative) of its and its contacts' posted customer invoices and credit notes dated within
  the last 12 months (at most `max_records` of them, the newest: a customer with more reads
  as at least that much).
- **orders** are `sale.order` records of the customer and its contacts (`child_of`), newest
  first, or by name (`=ilike`) for the numbers `order_number_pattern` finds in the text; with
  their lines (`sale.order.line`, sections and notes left out), their outgoing pickings
  (`stock.picking` by `sale_id`, else by `origin`) and their posted or cancelled customer
  invoices (`account.move` in `invoice_ids`, or whose `invoice_origin` names the order).
- **stock** is `product.product`'s `qty_available`, `free_qty` and `virtual_available` read
  in each warehouse's context (`warehouse` up to Odoo 17, `warehouse_id` from 18: both are
  sent).
- **products** are sellable (`sale_ok`) products whose code or name holds the text.

Fields that depend on the version or on installed modules (`delivery_status`, `mobile`,
`carrier_*`, `free_qty`, `email_normalized`, ...) are asked for only when the database's
`fields_get` lists them (once per model per adapter); a missing module's model (no
`stock.picking`) means no shipments rather than an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from erp_bridge import odoo_mapping
from erp_bridge.base import ErpAdapter, ErpContext, ErpKind, ErpNotFound
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    Money,
    Order,
    OrderLine,
    OrderSummary,
    Product,
    Stock,
    StockLevel,
)
from erp_bridge.odoo_client import (
    MAX_RECORDS,
    PAGE_SIZE,
    Domain,
    ModelFields,
    OdooConnection,
    Record,
    any_of,
    gather,
    gather_all,
    ids,
    many2one,
    text,
)
from erp_bridge.patterns import compile_pattern

PHONE_DIGITS = 8  # the tail of a phone number that is searched for
MIN_PHONE_DIGITS = 6


class OdooSettings(BaseModel):
    """One Odoo database, as an admin enters it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=500, description="Odoo's address, e.g. https://acme.odoo.com")
    database: str = Field(min_length=1, max_length=200, description="the database's name")
    protocol: Literal["json2", "jsonrpc"] = Field(
        default="json2",
        description="json2 (Odoo 19 and later) or jsonrpc (the external API of Odoo 16 to 18)",
    )
    login: str | None = Field(
        default=None, max_length=200, description="the user's login (jsonrpc only)"
    )
    api_key: str = Field(min_length=8, max_length=500, description="secret: the user's API key")
    warehouse_ids: list[Annotated[int, Field(gt=0)]] | None = Field(
        default=None,
        max_length=100,
        description="stock.warehouse ids to report stock for (default: all)",
    )
    order_number_pattern: str = Field(
        default=r"S\d{5}",
        min_length=1,
        max_length=200,
        description="order numbers as customers write them (a regular expression)",
    )
    tracking_url_template: str | None = Field(
        default=None,
        max_length=1000,
        description="a tracking page for pickings without one, with {tracking}",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) address, e.g. https://acme.odoo.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        return value.strip().rstrip("/")

    @field_validator("order_number_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        order_pattern(value)
        return value

    @field_validator("tracking_url_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or "{tracking}" not in value:
            raise ValueError("must be an http(s) address with {tracking} in it")
        try:
            value.format(tracking="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may hold no other {placeholder} than {tracking}") from None
        return value

    @field_validator("login")
    @classmethod
    def _login(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _login_for_jsonrpc(self) -> OdooSettings:
        if self.protocol == "jsonrpc" and not self.login:
            raise ValueError("the jsonrpc protocol needs the user's login")
        return self


def order_pattern(pattern: str) -> Any:
    """The order number pattern on RE2 (linear time, case-insensitive)."""
    return compile_pattern(pattern, case_sensitive=False)


# Fields asked for only when the database has them (by version or installed modules).
OPTIONAL_FIELDS = {
    "res.partner": ("mobile", "email_normalized", "property_product_pricelist"),
    "sale.order": ("delivery_status",),
    "stock.picking": ("sale_id", "carrier_id", "carrier_tracking_ref", "carrier_tracking_url"),
    "product.product": ("free_qty",),
}
PARTNER_FIELDS = ("name", "ref", "email", "phone", "vat", "commercial_partner_id")
ORDER_FIELDS = (
    "name",
    "date_order",
    "state",
    "amount_total",
    "currency_id",
    "invoice_status",
    "partner_id",
    "invoice_ids",
)
LINE_FIELDS = (
    "product_id",
    "name",
    "product_uom_qty",
    "price_unit",
    "price_subtotal",
    "currency_id",
    "display_type",
)
PICKING_FIELDS = ("name", "state", "origin", "date_done")
INVOICE_FIELDS = (
    "name",
    "move_type",
    "state",
    "invoice_origin",
    "invoice_date",
    "invoice_date_due",
    "amount_total",
    "amount_residual",
    "payment_state",
    "currency_id",
)
PRODUCT_FIELDS = ("default_code", "name", "lst_price", "currency_id")
TURNOVER_FIELDS = ("amount_total_signed", "company_currency_id")
TURNOVER_DAYS = 365


class OdooErp(ErpAdapter):
    kind = "odoo"

    def __init__(
        self,
        settings: OdooSettings,
        *,
        page_size: int = PAGE_SIZE,
        max_records: int = MAX_RECORDS,
        **policy: Any,
    ) -> None:
        super().__init__(**policy)
        self.settings = settings
        self.rpc = OdooConnection(
            url=settings.url,
            database=settings.database,
            protocol=settings.protocol,
            login=settings.login,
            api_key=settings.api_key,
            connect_timeout=max(self.timeout, 1.0),
            page_size=page_size,
            max_records=max_records,
        )
        self._order_pattern = order_pattern(settings.order_number_pattern)

    async def close(self) -> None:
        await self.rpc.close()

    def order_numbers(self, text_: str) -> list[str]:
        """The order numbers in a customer's text (by `order_number_pattern`), once each."""
        found: list[str] = []
        for match in self._order_pattern.finditer(text_):
            if match.group(0) and match.group(0) not in found:
                found.append(match.group(0))
        return found

    # --- the hooks ---------------------------------------------------------------------------

    async def do_check(self) -> str:
        version = await self.rpc.version()
        uid = await self.rpc.uid()
        users = await self.rpc.search_read("res.users", [["id", "=", uid]], ["name"], limit=1)
        name = text(users[0].get("name")) if users else None
        protocol = "JSON-2" if self.settings.protocol == "json2" else "JSON-RPC"
        return (
            f"signed in to Odoo {version} (database {self.settings.database}) "
            f"as {name or f'user {uid}'}, over {protocol}"
        )

    async def do_find_customer(self, query: CustomerQuery) -> Customer | None:
        partner = await self._partner_fields()
        stages: list[tuple[Sequence[str], Any]] = [
            (query.erp_refs, self._by_refs),
            (query.emails, self._by_emails),
            (query.phones, self._by_phones),
            (query.tax_ids, self._by_tax_ids),
        ]
        for values, find in stages:
            if not values:
                continue
            matches: list[Record] = await find(list(values), partner)
            if matches:
                return await self._customer(matches[0], partner)
        return None

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        partner_id = await self._partner_id(customer_ref)
        if partner_id is None or limit <= 0:
            return []
        orders = await self.rpc.search_read_all(
            "sale.order",
            [["partner_id", "child_of", partner_id]],
            await self._order_fields(),
            order="date_order desc, id desc",
            limit=limit,
        )
        pickings, invoices = await gather_all(self._pickings(orders), self._invoices_of(orders))
        return [
            odoo_mapping.order_summary(
                order,
                pickings.get(order["id"], []),
                invoices.get(order["id"], []),
                self.settings.tracking_url_template,
            )
            for order in orders
        ]

    async def do_get_order(self, number_: str) -> Order | None:
        wanted = self.order_numbers(number_)
        if not wanted:
            raise ErpNotFound(f"{number_!r} is not an order number")
        found = await self.rpc.search_read_all(
            "sale.order",
            any_of(*(["name", "=ilike", name] for name in wanted)),
            await self._order_fields(),
            order="id desc",
            limit=10,
        )
        by_name = {str(order.get("name", "")).casefold(): order for order in found}
        order = next((by_name[n.casefold()] for n in wanted if n.casefold() in by_name), None)
        if order is None:
            raise ErpNotFound(f"Odoo has no sales order {wanted[0]}")
        lines, pickings, invoices = await gather_all(
            self._lines(order["id"]), self._pickings([order]), self._invoices_of([order])
        )
        mine_pickings = pickings.get(order["id"], [])
        mine_invoices = invoices.get(order["id"], [])
        template = self.settings.tracking_url_template
        summary = odoo_mapping.order_summary(order, mine_pickings, mine_invoices, template)
        today = self.clock().date()
        return Order(
            **summary.model_dump(),
            lines=tuple(lines),
            shipments=tuple(odoo_mapping.shipment(picking, template) for picking in mine_pickings),
            invoices=tuple(odoo_mapping.invoice(move, today) for move in mine_invoices),
        )

    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]:
        partner_id = await self._partner_id(customer_ref)
        if partner_id is None:
            return []
        moves = await self.rpc.search_read_all(
            "account.move",
            [
                ["move_type", "=", "out_invoice"],
                ["state", "in", ["posted", "cancel"]],
                ["partner_id", "child_of", partner_id],
            ],
            INVOICE_FIELDS,
            order="invoice_date desc, id desc",
        )
        today = self.clock().date()
        return [odoo_mapping.invoice(move, today) for move in moves]

    async def do_stock(self, sku: str) -> Stock | None:
        sku = sku.strip()
        if not sku:
            raise ErpNotFound("no SKU")
        products = await self.rpc.search_read(
            "product.product", [["default_code", "=", sku]], ["default_code", "name"], limit=1
        )
        if not products:
            raise ErpNotFound(f"Odoo has no product {sku}")
        product = products[0]
        fields = ["qty_available", "virtual_available"]
        if "free_qty" in (await self._model("product.product")).optional:
            fields.append("free_qty")
        domain: Domain = []
        if self.settings.warehouse_ids is not None:
            domain = [["id", "in", list(self.settings.warehouse_ids)]]
        warehouses = await self.rpc.search_read_all(
            "stock.warehouse", domain, ["name"], order="sequence, id"
        )

        async def level(warehouse: Record) -> StockLevel:
            key = warehouse["id"]
            # Odoo up to 17 reads the warehouse from "warehouse", 18 and later "warehouse_id".
            rows = await self.rpc.search_read(
                "product.product",
                [["id", "=", product["id"]]],
                fields,
                limit=1,
                context={"warehouse": key, "warehouse_id": key},
            )
            if not rows:
                raise ErpNotFound(f"Odoo has no product {sku}")
            return odoo_mapping.stock_level(
                text(warehouse.get("name")) or f"warehouse {key}", rows[0]
            )

        levels = await gather([level(warehouse) for warehouse in warehouses], 4)
        return Stock(
            sku=text(product.get("default_code")) or sku,
            name=text(product.get("name")) or "",
            levels=tuple(levels),
        )

    async def do_search_products(self, text_: str, limit: int) -> list[Product]:
        if not text_ or limit <= 0:
            return []
        products = await self.rpc.search_read_all(
            "product.product",
            [
                "&",
                ["sale_ok", "=", True],
                *any_of(["default_code", "ilike", text_], ["name", "ilike", text_]),
            ],
            PRODUCT_FIELDS,
            order="default_code, id",
            limit=limit,
        )
        return [odoo_mapping.product(product) for product in products]

    # --- reading -----------------------------------------------------------------------------

    async def _model(self, model: str) -> ModelFields:
        return await self.rpc.model_fields(model, OPTIONAL_FIELDS.get(model, ()))

    async def _partner_fields(self) -> list[str]:
        optional = (await self._model("res.partner")).optional
        return [*PARTNER_FIELDS, *sorted(optional)]

    async def _order_fields(self) -> list[str]:
        optional = (await self._model("sale.order")).optional
        return [*ORDER_FIELDS, *sorted(optional)]

    async def _partners(self, domain: Domain, fields: Sequence[str]) -> list[Record]:
        return await self.rpc.search_read_all("res.partner", domain, fields, order="id", limit=50)

    async def _by_refs(self, refs: list[str], fields: list[str]) -> list[Record]:
        refs = [ref.strip() for ref in refs if ref.strip()]
        numeric = [int(ref) for ref in refs if ref.isdigit()]
        leaves: list[list[Any]] = [["ref", "in", refs]]
        if numeric:
            leaves.append(["id", "in", numeric])
        found = await self._partners(any_of(*leaves), fields)

        def rank(partner: Record) -> int:
            for position, ref in enumerate(refs):
                if text(partner.get("ref")) == ref or str(partner["id"]) == ref:
                    return position
            return len(refs)

        return sorted(found, key=rank)

    async def _by_emails(self, emails: list[str], fields: list[str]) -> list[Record]:
        wanted = {email.strip().casefold() for email in emails if "@" in email}
        if not wanted:
            return []
        if "email_normalized" in fields:
            domain: Domain = [["email_normalized", "in", sorted(wanted)]]
        else:  # `ilike`, not `=ilike`: "Kim <kim@acme.example>" and lists are found too
            domain = any_of(*(["email", "ilike", email] for email in sorted(wanted)))
        found = await self._partners(domain, fields)
        return [p for p in found if _emails_of(p) & wanted]

    async def _by_phones(self, phones: list[str], fields: list[str]) -> list[Record]:
        wanted = [
            digits for digits in map(_phone_digits, phones) if len(digits) >= MIN_PHONE_DIGITS
        ]
        if not wanted:
            return []
        columns = [name for name in ("phone", "mobile") if name in fields]
        patterns = sorted({"%".join(digits[-PHONE_DIGITS:]) for digits in wanted})
        leaves = [[column, "ilike", pattern] for column in columns for pattern in patterns]
        found = await self._partners(any_of(*leaves), fields)
        return [
            partner
            for partner in found
            if any(
                _same_phone(_phone_digits(text(partner.get(column)) or ""), digits)
                for column in columns
                for digits in wanted
            )
        ]

    async def _by_tax_ids(self, tax_ids: list[str], fields: list[str]) -> list[Record]:
        wanted = {_compact(tax_id) for tax_id in tax_ids if _compact(tax_id)}
        if not wanted:
            return []
        forms = sorted(wanted | {tax_id.strip() for tax_id in tax_ids if tax_id.strip()})
        found = await self._partners(any_of(*(["vat", "=ilike", f] for f in forms)), fields)
        return [p for p in found if _compact(text(p.get("vat")) or "") in wanted]

    async def _customer(self, match: Record, fields: list[str]) -> Customer:
        """The match's commercial partner (read while its turnover is summed)."""
        company = many2one(match.get("commercial_partner_id"))
        if company is None or company[0] == match["id"]:
            turnover = await self._turnover(match["id"])
            return odoo_mapping.customer(match).model_copy(update={"turnover": turnover})
        rows, turnover = await gather_all(
            self.rpc.search_read(
                "res.partner",
                [["id", "=", company[0]]],
                fields,
                limit=1,
                context={"active_test": False},
            ),
            self._turnover(company[0]),
        )
        if not rows:  # the company is gone since the match was read: the match is the customer
            turnover = await self._turnover(match["id"])
        customer = odoo_mapping.customer(rows[0] if rows else match)
        return customer.model_copy(update={"turnover": turnover})

    async def _turnover(self, partner_id: int) -> Money | None:
        """What the partner (and its contacts) were invoiced over the last 12 months, less
        credit notes, in the company's currency."""
        since = (self.clock() - timedelta(days=TURNOVER_DAYS)).date().isoformat()
        moves = await self.rpc.search_read_all(
            "account.move",
            [
                ["move_type", "in", ["out_invoice", "out_refund"]],
                ["state", "=", "posted"],
                ["partner_id", "child_of", partner_id],
                ["invoice_date", ">=", since],
            ],
            TURNOVER_FIELDS,
            order="invoice_date desc, id desc",
        )
        return odoo_mapping.turnover(moves)

    async def _partner_id(self, customer_ref: str) -> int | None:
        """A partner by `Customer.ref` (its id), or by Odoo's own reference (`ref`)."""
        ref = customer_ref.strip()
        if ref.isdigit():
            return int(ref)
        found = await self.rpc.search_read("res.partner", [["ref", "=", ref]], ["id"], limit=1)
        return found[0]["id"] if found else None

    async def _lines(self, order_id: int) -> list[OrderLine]:
        rows = await self.rpc.search_read_all(
            "sale.order.line",
            [["order_id", "=", order_id]],
            LINE_FIELDS,
            order="sequence, id",
        )
        rows = [row for row in rows if not text(row.get("display_type"))]  # sections, notes
        product_ids = sorted({pair[0] for row in rows if (pair := many2one(row["product_id"]))})
        codes: dict[int, str | None] = {}
        if product_ids:
            products = await self.rpc.search_read_all(
                "product.product",
                [["id", "in", product_ids]],
                ["default_code"],
                order="id",
                context={"active_test": False},  # archived products still name old lines
            )
            codes = {product["id"]: text(product.get("default_code")) for product in products}
        return [odoo_mapping.order_line(row, codes) for row in rows]

    async def _pickings(self, orders: list[Record]) -> dict[int, list[Record]]:
        """The outgoing pickings of each order (by `sale_id`, else by `origin`)."""
        if not orders:
            return {}
        model = await self._model("stock.picking")
        if not model.exists:
            return {}
        order_ids = [order["id"] for order in orders]
        names = [str(order["name"]) for order in orders]
        by_order: list[Any] = [["origin", "in", names]]
        if "sale_id" in model.optional:
            by_order = any_of(["sale_id", "in", order_ids], ["origin", "in", names])
        rows = await self.rpc.search_read_all(
            "stock.picking",
            ["&", ["picking_type_code", "=", "outgoing"], *by_order],
            [*PICKING_FIELDS, *sorted(model.optional)],
            order="id",
        )
        id_of_name = {str(order["name"]): order["id"] for order in orders}
        grouped: dict[int, list[Record]] = {}
        for row in rows:
            sale = many2one(row.get("sale_id"))
            order_id: int | None = (
                sale[0] if sale else id_of_name.get(text(row.get("origin")) or "")
            )
            if order_id is not None and order_id in order_ids:
                grouped.setdefault(order_id, []).append(row)
        return grouped

    async def _invoices_of(self, orders: list[Record]) -> dict[int, list[Record]]:
        """Each order's posted or cancelled customer invoices (`invoice_ids`, or an
        `invoice_origin` naming the order)."""
        if not orders:
            return {}
        invoice_ids = sorted({i for order in orders for i in ids(order.get("invoice_ids"))})
        names = [str(order["name"]) for order in orders]
        by_origin = [["invoice_origin", "ilike", name] for name in names]
        leaves = [["id", "in", invoice_ids], *by_origin] if invoice_ids else by_origin
        rows = await self.rpc.search_read_all(
            "account.move",
            [
                "&",
                "&",
                ["move_type", "=", "out_invoice"],
                ["state", "in", ["posted", "cancel"]],
                *any_of(*leaves),
            ],
            INVOICE_FIELDS,
            order="invoice_date desc, id desc",
        )
        grouped: dict[int, list[Record]] = {}
        for order in orders:
            mine = set(ids(order.get("invoice_ids")))
            for row in rows:
                origins = {o.strip() for o in (text(row.get("invoice_origin")) or "").split(",")}
                if row["id"] in mine or str(order["name"]) in origins:
                    grouped.setdefault(order["id"], []).append(row)
        return grouped


def _emails_of(partner: Record) -> set[str]:
    found = set()
    for name in ("email_normalized", "email"):
        value = text(partner.get(name))
        if value:
            found |= {m.casefold() for m in re.findall(r"[^\s<>,;\"']+@[^\s<>,;\"']+", value)}
    return found


def _phone_digits(phone: str) -> str:
    """A phone number's digits without the international or trunk prefix."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("00") or digits.startswith("00"):
        digits = digits[2:]
    return digits.lstrip("0")


def _same_phone(a: str, b: str) -> bool:
    """Two numbers are one when the longer ends with the shorter and the shorter is long
    enough to mean something (+49 30 1234567 and 030 1234567 are the same)."""
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return len(short) >= MIN_PHONE_DIGITS and long_.endswith(short)


def _compact(tax_id: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", tax_id).upper()


def _build(settings: BaseModel | Mapping[str, Any], context: ErpContext, **policy: Any) -> OdooErp:
    """The adapter for validated settings (`context` is not used: Odoo holds its data)."""
    if not isinstance(settings, OdooSettings):
        values = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings)
        settings = OdooSettings.model_validate(values)
    return OdooErp(settings, **policy)


KIND = ErpKind(
    name="odoo",
    label="Odoo",
    settings_model=OdooSettings,
    secret_fields=frozenset({"api_key"}),
    build=_build,
)
