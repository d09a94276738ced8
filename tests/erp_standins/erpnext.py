"""A stand-in for an ERPNext site in the tests: Frappe's REST API over an in-memory dataset.

`ErpNextStandIn` is an aiohttp server answering what Frappe answers (API v1, JSON):

- `GET /api/resource/<DocType>`: a list, `{"data": [rows]}`. It reads Frappe's parameters
  as Frappe does: `fields` (a JSON list; only `name` without it, every column for `["*"]`),
  `filters` and `or_filters` (a JSON list of `[field, op, value]`, or `[DocType, field, op,
  value]` for a child table, or a JSON object of field: value / field: [op, value]); the
  operators `=`, `!=`, `<`, `>`, `<=`, `>=`, `like`, `not like`, `in`, `not in`, `is`
  (`set` / `not set`) and `between`; `order_by` ("field desc, other asc"; default
  `modified desc`); `limit_start` and `limit_page_length` (default 20, 0 for all; `limit`
  too). A filter on a child table joins it as Frappe's SQL does: a parent comes back once per
  matching child row. String comparisons ignore case, as MariaDB's collation does; an empty
  column reads as "" or 0 (Frappe's `ifnull`).
- `GET /api/resource/<DocType>/<name>`: the document with its child tables and `doctype`.
- `GET /api/method/frappe.auth.get_logged_user` and `frappe.client.get_time_zone`:
  `{"message": ...}`.

Errors come as Frappe's bodies: `exc_type`, `_server_messages` (a JSON list of JSON objects)
and, for a System Manager's 5xx, `exception` and `exc`: a wrong token 401
`AuthenticationError`; no token, or a DocType in `denied`, 403 `PermissionError` (with
`_error_message`); an unknown document or DocType 404 `DoesNotExistError`; an unknown column
500 `OperationalError` (MariaDB's 1054), which catches an adapter asking for a field ERPNext
does not have: every DocType's columns are declared in `SCHEMA`.

A test scripts the next answers (`script(...)`): a stall or a hang longer than the client
waits, a 5xx page from the proxy, or a Frappe exception body; `latency` delays every answer.
Every request is recorded (`requests`, `lists(doctype)`).

`seed(standin)` fills it with a small company's customers, contacts, orders, deliveries,
shipments, invoices, items, prices and stock (see the function).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

API_KEY = "5f0c4d2e8a1b3c7"
API_SECRET = "9e8d7c6b5a4f3e2"
API_USER = "omnicrm-api@example.com"

Doc = dict[str, Any]

STANDARD = ("name", "owner", "creation", "modified", "modified_by", "docstatus", "idx")
CHILD_STANDARD = (*STANDARD, "parent", "parentfield", "parenttype")

# The columns of each DocType the stand-in serves (ERPNext's field names), children included.
SCHEMA: dict[str, tuple[str, ...]] = {
    "Company": ("company_name", "abbr", "default_currency", "country"),
    "Warehouse": ("warehouse_name", "company", "is_group", "disabled"),
    "Customer": (
        "customer_name",
        "customer_type",
        "customer_group",
        "territory",
        "email_id",
        "mobile_no",
        "tax_id",
        "disabled",
        "default_currency",
        "customer_primary_contact",
    ),
    "Contact": (
        "first_name",
        "last_name",
        "full_name",
        "email_id",
        "phone",
        "mobile_no",
        "status",
        "is_primary_contact",
    ),
    "Contact Email": ("email_id", "is_primary"),
    "Contact Phone": ("phone", "is_primary_phone", "is_primary_mobile_no"),
    "Dynamic Link": ("link_doctype", "link_name", "link_title"),
    "Sales Order": (
        "customer",
        "customer_name",
        "company",
        "order_type",
        "transaction_date",
        "delivery_date",
        "status",
        "delivery_status",
        "billing_status",
        "per_delivered",
        "per_billed",
        "advance_paid",
        "total",
        "grand_total",
        "rounded_total",
        "currency",
    ),
    "Sales Order Item": (
        "item_code",
        "item_name",
        "qty",
        "uom",
        "rate",
        "amount",
        "delivered_qty",
        "warehouse",
        "delivery_date",
    ),
    "Delivery Note": (
        "customer",
        "customer_name",
        "company",
        "posting_date",
        "posting_time",
        "status",
        "is_return",
        "per_billed",
        "grand_total",
        "currency",
        "transporter",
        "transporter_name",
        "driver_name",
        "lr_no",
        "lr_date",
        "vehicle_no",
    ),
    "Delivery Note Item": ("item_code", "item_name", "qty", "against_sales_order", "so_detail"),
    "Shipment": (
        "status",
        "pickup_date",
        "service_provider",
        "shipment_id",
        "carrier",
        "carrier_service",
        "awb_number",
        "tracking_url",
        "tracking_status",
        "tracking_status_info",
    ),
    "Shipment Delivery Note": ("delivery_note", "grand_total"),
    "Sales Invoice": (
        "customer",
        "customer_name",
        "company",
        "posting_date",
        "due_date",
        "status",
        "is_return",
        "grand_total",
        "rounded_total",
        "outstanding_amount",
        "currency",
    ),
    "Sales Invoice Item": (
        "item_code",
        "item_name",
        "qty",
        "rate",
        "amount",
        "sales_order",
        "so_detail",
        "delivery_note",
    ),
    "Item": (
        "item_code",
        "item_name",
        "item_group",
        "stock_uom",
        "description",
        "standard_rate",
        "disabled",
        "is_sales_item",
        "is_stock_item",
        "has_variants",
    ),
    "Item Price": (
        "item_code",
        "item_name",
        "price_list",
        "price_list_rate",
        "currency",
        "selling",
        "buying",
        "customer",
    ),
    "Bin": (
        "item_code",
        "warehouse",
        "actual_qty",
        "reserved_qty",
        "ordered_qty",
        "projected_qty",
        "stock_uom",
    ),
}
# Each parent's child tables: field -> child DocType.
TABLES: dict[str, dict[str, str]] = {
    "Contact": {
        "email_ids": "Contact Email",
        "phone_nos": "Contact Phone",
        "links": "Dynamic Link",
    },
    "Sales Order": {"items": "Sales Order Item"},
    "Delivery Note": {"items": "Delivery Note Item"},
    "Shipment": {"shipment_delivery_note": "Shipment Delivery Note"},
    "Sales Invoice": {"items": "Sales Invoice Item"},
}
CHILDREN = {child for tables in TABLES.values() for child in tables.values()}
PARENTS = [doctype for doctype in SCHEMA if doctype not in CHILDREN]
# Columns that are numbers in MariaDB (an empty one reads 0, not NULL).
NUMBERS = {
    "docstatus",
    "idx",
    "is_group",
    "disabled",
    "is_primary",
    "is_primary_phone",
    "is_primary_mobile_no",
    "is_primary_contact",
    "per_delivered",
    "per_billed",
    "advance_paid",
    "total",
    "grand_total",
    "rounded_total",
    "qty",
    "rate",
    "amount",
    "delivered_qty",
    "is_return",
    "outstanding_amount",
    "standard_rate",
    "is_sales_item",
    "is_stock_item",
    "has_variants",
    "price_list_rate",
    "selling",
    "buying",
    "actual_qty",
    "reserved_qty",
    "ordered_qty",
    "projected_qty",
}
OPERATORS = {
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "like",
    "not like",
    "in",
    "not in",
    "is",
    "between",
}


# --- scripted answers ---------------------------------------------------------------------------


@dataclass
class Answer:
    """What the next request (whose path holds `path_contains`, if set) gets instead of the
    usual answer: `body` (JSON) or `text` with `status` after `stall` seconds; `hang` never
    answers (until the stand-in closes); `passthrough` answers as usual after the stall."""

    status: int = 200
    body: Any = None
    text: str | None = None
    stall: float = 0.0
    hang: bool = False
    passthrough: bool = False
    path_contains: str | None = None


def hang(path_contains: str | None = None) -> Answer:
    return Answer(hang=True, path_contains=path_contains)


def slow(seconds: float, path_contains: str | None = None) -> Answer:
    return Answer(stall=seconds, passthrough=True, path_contains=path_contains)


def proxy_error(status: int = 502, path_contains: str | None = None) -> Answer:
    """The page nginx shows when the Frappe workers behind it are down."""
    page = (
        f"<html><head><title>{status} Bad Gateway</title></head><body>"
        f"<center><h1>{status} Bad Gateway</h1></center><hr><center>nginx</center>"
        "</body></html>"
    )
    return Answer(status=status, text=page, path_contains=path_contains)


def frappe_exception(
    exc_type: str,
    message: str,
    status: int = 417,
    *,
    traceback: bool = True,
    path_contains: str | None = None,
) -> Answer:
    """Frappe's answer to an exception raised with `frappe.throw(message, exc_type)`."""
    return Answer(
        status=status,
        body=error_body(exc_type, message, traceback=traceback),
        path_contains=path_contains,
    )


def error_body(exc_type: str, message: str | None, *, traceback: bool = False) -> Doc:
    """Frappe's JSON error body (API v1): `exc_type` always; the message dialog as
    `_server_messages` (JSON in JSON); `exception` and `exc` when tracebacks are shown."""
    body: Doc = {"exc_type": exc_type}
    module = "pymysql.err" if exc_type == "OperationalError" else "frappe.exceptions"
    if message is not None and exc_type != "OperationalError":
        dialog = {
            "message": message,
            "title": "Message",
            "indicator": "red",
            "raise_exception": 1,
            "__frappe_exc_id": secrets.token_hex(8),
        }
        body["_server_messages"] = json.dumps([json.dumps(dialog)])
    if traceback:
        line = f"{module}.{exc_type}: {message}" if message else f"{module}.{exc_type}"
        body["exception"] = line
        body["exc"] = json.dumps(
            [
                "Traceback (most recent call last):\n"
                '  File "apps/frappe/frappe/app.py", line 114, in application\n'
                "    response = frappe.api.handle(request)\n"
                f"{line}\n"
            ]
        )
    return body


class FrappeError(Exception):
    def __init__(self, status: int, exc_type: str, message: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.exc_type = exc_type
        self.message = message
        self.extra = extra


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    authorization: str | None
    doctype: str | None = None
    name: str | None = None

    def json(self, key: str) -> Any:
        return json.loads(self.params[key]) if key in self.params else None


@dataclass
class _Condition:
    doctype: str | None  # a child DocType, or None for the document's own column
    field: str
    operator: str
    value: Any


# --- the server ---------------------------------------------------------------------------------


class ErpNextStandIn:
    def __init__(
        self,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        user: str = API_USER,
        time_zone: str | None = "Europe/Berlin",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.user = user
        self.time_zone = time_zone
        self.docs: dict[str, dict[str, Doc]] = {doctype: {} for doctype in PARENTS}
        self.requests: list[Recorded] = []
        self.answers: list[Answer] = []
        self.latency = 0.0
        self.denied: set[str] = set()  # DocTypes the API user may not read
        self.server: TestServer | None = None
        self._released = asyncio.Event()
        self._series: dict[str, int] = {}
        self._ticks = itertools.count(1)

    # --- the dataset ----------------------------------------------------------------------

    def add(self, doctype: str, name: str | None = None, **fields: Any) -> Doc:
        """A document as Frappe stores it: every column (empty ones as None or 0), its child
        rows with their own names and parent links."""
        if doctype not in self.docs:
            raise KeyError(f"the stand-in has no DocType {doctype!r}")
        tables = TABLES.get(doctype, {})
        columns = SCHEMA[doctype]
        unknown = set(fields) - set(columns) - set(tables) - {"docstatus"}
        if unknown:
            raise KeyError(f"{doctype} has no fields {sorted(unknown)}")
        name = name or self._name(doctype, fields)
        tick = next(self._ticks)
        stamp = f"2026-01-01 08:{tick // 60 % 60:02d}:{tick % 60:02d}.{tick:06d}"
        doc: Doc = {
            "name": name,
            "owner": "Administrator",
            "creation": stamp,
            "modified": stamp,
            "modified_by": "Administrator",
            "docstatus": fields.get("docstatus", 0),
            "idx": 0,
        }
        for column in columns:
            doc[column] = fields.get(column, 0 if column in NUMBERS else None)
        for table, child in tables.items():
            rows = []
            for index, given in enumerate(fields.get(table, []), start=1):
                wrong = set(given) - set(SCHEMA[child])
                if wrong:
                    raise KeyError(f"{child} has no fields {sorted(wrong)}")
                row: Doc = {
                    "name": secrets.token_hex(5),
                    "owner": "Administrator",
                    "creation": stamp,
                    "modified": stamp,
                    "modified_by": "Administrator",
                    "docstatus": doc["docstatus"],
                    "idx": index,
                    "parent": name,
                    "parentfield": table,
                    "parenttype": doctype,
                    "doctype": child,
                }
                for column in SCHEMA[child]:
                    row[column] = given.get(column, 0 if column in NUMBERS else None)
                rows.append(row)
            doc[table] = rows
        self.docs[doctype][name] = doc
        return doc

    def _name(self, doctype: str, fields: dict[str, Any]) -> str:
        if doctype == "Customer":
            return str(fields["customer_name"])
        if doctype == "Company":
            return str(fields["company_name"])
        if doctype == "Item":
            return str(fields["item_code"])
        series = {
            "Sales Order": ("SAL-ORD-", "transaction_date"),
            "Delivery Note": ("MAT-DN-", "posting_date"),
            "Sales Invoice": ("ACC-SINV-", "posting_date"),
        }
        if doctype in series:
            prefix, date_field = series[doctype]
            year = str(fields.get(date_field) or "2026")[:4]
            key = f"{prefix}{year}-"
            self._series[key] = self._series.get(key, 0) + 1
            return f"{key}{self._series[key]:05d}"
        if doctype == "Shipment":
            self._series["SHIPMENT-"] = self._series.get("SHIPMENT-", 0) + 1
            return f"SHIPMENT-{self._series['SHIPMENT-']:05d}"
        return secrets.token_hex(5)  # Frappe's hash names (Bin, Item Price, Contact rows)

    # --- scripting and inspection ---------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """The next matching requests get these answers, in order; then the usual again."""
        self.answers.extend(answers)

    def lists(self, doctype: str) -> list[Recorded]:
        """The list requests made for `doctype`."""
        return [r for r in self.requests if r.doctype == doctype and r.name is None]

    def reads(self, doctype: str) -> list[Recorded]:
        """The document requests made for `doctype`."""
        return [r for r in self.requests if r.doctype == doctype and r.name is not None]

    # --- serving --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/resource/{doctype}", self._list)
        app.router.add_get("/api/resource/{doctype}/{name:.+}", self._read)
        app.router.add_get("/api/method/{method}", self._method)
        return app

    async def start(self) -> str:
        self.server = TestServer(self.app())
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        self._released.set()
        if self.server is not None:
            await self.server.close()

    async def _answer(
        self, request: web.Request, handler: Callable[[bool], web.StreamResponse]
    ) -> web.StreamResponse:
        """Record, delay, play a scripted answer, check the token, then answer."""
        recorded = Recorded(
            request.method,
            request.path,
            {key: request.query[key] for key in request.query},
            request.headers.get("Authorization"),
            request.match_info.get("doctype"),
            request.match_info.get("name"),
        )
        self.requests.append(recorded)
        if self.latency:
            await asyncio.sleep(self.latency)
        scripted = next(
            (a for a in self.answers if a.path_contains is None or a.path_contains in request.path),
            None,
        )
        if scripted is not None:
            self.answers.remove(scripted)
            if scripted.hang:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), timeout=60)
                return web.Response(status=503, text="released")
            if scripted.stall:
                await asyncio.sleep(scripted.stall)
            if not scripted.passthrough:
                if scripted.text is not None:
                    return web.Response(
                        status=scripted.status, text=scripted.text, content_type="text/html"
                    )
                return web.json_response(scripted.body, status=scripted.status)
        try:
            return handler(self._authorize(recorded.authorization, recorded.doctype))
        except FrappeError as exc:
            body = error_body(exc.exc_type, exc.message, traceback=exc.status >= 500)
            body.update(exc.extra)
            return web.json_response(body, status=exc.status)

    def _authorize(self, header: str | None, doctype: str | None) -> bool:
        """Whether the request signs the API user in (False: a guest); Frappe's errors for a
        wrong token, or a DocType the user (or a guest) may not read."""
        parts = (header or "").split(" ")
        if len(parts) == 2:
            scheme, token = parts
            if scheme.lower() != "token" or token != f"{self.api_key}:{self.api_secret}":
                # validate_auth: a two-part header that signs nobody in
                raise FrappeError(401, "AuthenticationError", None)
            if doctype in self.denied:
                raise FrappeError(
                    403,
                    "PermissionError",
                    None,
                    _error_message=f"Insufficient Permission for {doctype}",
                )
            return True
        if doctype is not None:  # a guest
            raise FrappeError(
                403,
                "PermissionError",
                None,
                _error_message=f"Insufficient Permission for {doctype}",
            )
        return False

    async def _list(self, request: web.Request) -> web.StreamResponse:
        doctype = request.match_info["doctype"]
        return await self._answer(request, lambda _: self._list_answer(doctype, request.query))

    async def _read(self, request: web.Request) -> web.StreamResponse:
        doctype = request.match_info["doctype"]
        name = request.match_info["name"].rstrip("/")
        return await self._answer(request, lambda _: self._read_answer(doctype, name))

    async def _method(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        return await self._answer(request, lambda signed_in: self._method_answer(method, signed_in))

    def _method_answer(self, method: str, signed_in: bool) -> web.StreamResponse:
        if method == "frappe.auth.get_logged_user":
            return web.json_response({"message": self.user if signed_in else "Guest"})
        if method == "frappe.client.get_time_zone":
            return web.json_response({"message": {"time_zone": self.time_zone}})
        raise FrappeError(404, "DoesNotExistError", f"Failed to get method for command {method}")

    def _read_answer(self, doctype: str, name: str) -> web.StreamResponse:
        docs = self._docs_of(doctype)
        found = next((doc for key, doc in docs.items() if key.casefold() == name.casefold()), None)
        if found is None:
            raise FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")
        return web.json_response({"data": {**copy.deepcopy(found), "doctype": doctype}})

    def _docs_of(self, doctype: str) -> dict[str, Doc]:
        if doctype not in self.docs:
            raise FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        return self.docs[doctype]

    def _list_answer(self, doctype: str, query: Any) -> web.StreamResponse:
        docs = self._docs_of(doctype)
        fields = _fields(doctype, _json(query.get("fields"), ["name"]))
        conditions = _conditions(doctype, _json(query.get("filters"), []))
        alternatives = _conditions(doctype, _json(query.get("or_filters"), []))
        order = _order(doctype, query.get("order_by") or "modified desc")
        start = _integer(query.get("limit_start") or query.get("start") or "0")
        length = _integer(
            query.get("limit_page_length") or query.get("limit") or query.get("page_length") or "20"
        )
        joined = list(
            dict.fromkeys(c.doctype for c in [*conditions, *alternatives] if c.doctype is not None)
        )
        rows: list[Doc] = []
        for doc in docs.values():
            pools = [_child_rows(doctype, doc, child) or [None] for child in joined]
            for combination in itertools.product(*pools):
                joins = dict(zip(joined, combination, strict=True))
                if all(_holds(c, doc, joins) for c in conditions) and (
                    not alternatives or any(_holds(c, doc, joins) for c in alternatives)
                ):
                    rows.append(doc)
        for column, descending in reversed(order):  # stable sorts, the last key first
            rows.sort(key=_by(column), reverse=descending)
        page = rows[start : start + length] if length > 0 else rows[start:]
        return web.json_response({"data": [{f: row.get(f) for f in fields} for row in page]})


# --- Frappe's query parameters --------------------------------------------------------------


def _json(raw: str | None, default: Any) -> Any:
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise FrappeError(500, "JSONDecodeError", f"Expecting value: {raw[:40]}") from None


def _integer(raw: str) -> int:
    try:
        return max(int(raw), 0)
    except ValueError:
        raise FrappeError(417, "ValidationError", f"Invalid limit {raw!r}") from None


def _unknown_column(doctype: str, column: str, where: str) -> FrappeError:
    return FrappeError(
        500, "OperationalError", f"(1054, \"Unknown column 'tab{doctype}.{column}' in '{where}'\")"
    )


def _column(doctype: str, raw: str, where: str) -> str:
    """A column name as Frappe accepts it: `name`, `` `name` ``, `` `tabDocType`.`name` ``."""
    text = raw.strip().replace("`", "")
    prefix = f"tab{doctype}."
    if text.startswith(prefix):
        text = text[len(prefix) :]
    if text not in (*STANDARD, *SCHEMA[doctype]):
        raise _unknown_column(doctype, text, where)
    return text


def _fields(doctype: str, raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw:
        return ["name"]
    if raw == ["*"]:
        return [*STANDARD, *SCHEMA[doctype]]
    return [_column(doctype, str(part), "field list") for part in raw]


def _conditions(doctype: str, raw: Any) -> list[_Condition]:
    if isinstance(raw, dict):
        raw = [
            [key, *(value if isinstance(value, list) and len(value) == 2 else ["=", value])]
            for key, value in raw.items()
        ]
    if not isinstance(raw, list):
        raise FrappeError(417, "ValidationError", "Filters must be a list or a dict")
    found = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) not in (3, 4):
            raise FrappeError(417, "ValidationError", f"Invalid filter: {json.dumps(entry)}")
        table, column, operator, value = entry if len(entry) == 4 else [doctype, *entry]
        operator = str(operator).lower()
        if operator not in OPERATORS:
            raise FrappeError(
                417, "ValidationError", f"Operator must be one of {', '.join(sorted(OPERATORS))}"
            )
        if table == doctype:
            found.append(
                _Condition(None, _column(doctype, str(column), "where clause"), operator, value)
            )
            continue
        if table not in TABLES.get(doctype, {}).values():
            raise FrappeError(
                500,
                "OperationalError",
                f"(1054, \"Unknown column 'tab{table}.{column}' in 'where clause'\")",
            )
        found.append(
            _Condition(table, _column(str(table), str(column), "where clause"), operator, value)
        )
    return found


def _order(doctype: str, raw: str) -> list[tuple[str, bool]]:
    order = []
    for part in raw.split(","):
        words = part.split()
        if not words:
            continue
        direction = words[1].lower() if len(words) > 1 else "asc"
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise FrappeError(417, "ValidationError", f"Invalid order_by: {raw}")
        order.append((_column(doctype, words[0], "order clause"), direction == "desc"))
    return order


def _child_rows(doctype: str, doc: Doc, child: str) -> list[Doc | None]:
    rows: list[Doc | None] = []
    for table, table_doctype in TABLES.get(doctype, {}).items():
        if table_doctype == child:
            rows.extend(doc.get(table) or [])
    return rows


def _holds(condition: _Condition, doc: Doc, joins: dict[str, Doc | None]) -> bool:
    row = doc if condition.doctype is None else joins[condition.doctype]
    value = None if row is None else row.get(condition.field)
    return _matches(value, condition.operator, condition.value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _same(stored: Any, wanted: Any) -> bool:
    if stored is None:
        stored = 0 if _is_number(wanted) else ""
    if _is_number(stored) or _is_number(wanted):
        left, right = _as_number(stored), _as_number(wanted)
        return left is not None and left == right
    return str(stored).casefold() == str(wanted).casefold()


def _compare(stored: Any, wanted: Any) -> int:
    if stored is None:
        stored = 0 if _is_number(wanted) else ""
    left, right = _as_number(stored), _as_number(wanted)
    if left is None or right is None or not (_is_number(stored) or _is_number(wanted)):
        a, b = str(stored).casefold(), str(wanted).casefold()
        return (a > b) - (a < b)
    return (left > right) - (left < right)


def _like(stored: Any, pattern: Any) -> bool:
    expression = "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in str(pattern)
    )
    return re.fullmatch(expression, str(stored or ""), re.IGNORECASE | re.DOTALL) is not None


def _values(raw: Any) -> list[Any]:
    if isinstance(raw, list | tuple):
        return list(raw)
    return [part.strip() for part in str(raw or "").split(",")]


def _matches(stored: Any, operator: str, wanted: Any) -> bool:
    if operator == "=":
        return _same(stored, wanted)
    if operator == "!=":
        return not _same(stored, wanted)
    if operator in ("<", ">", "<=", ">="):
        order = _compare(stored, wanted)
        return {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[operator]
    if operator == "like":
        return _like(stored, wanted)
    if operator == "not like":
        return not _like(stored, wanted)
    if operator == "in":
        return any(_same(stored, value) for value in _values(wanted))
    if operator == "not in":
        return not any(_same(stored, value) for value in _values(wanted))
    if operator == "is":
        empty = stored is None or stored == ""
        return empty if str(wanted).lower() == "not set" else not empty
    low, high = _values(wanted)[:2]  # between
    return _compare(stored, low) >= 0 and _compare(stored, high) <= 0


def _by(column: str) -> Callable[[Doc], tuple[int, Any]]:
    """A sort key on `column`: NULLs first, as MariaDB sorts them."""

    def key(doc: Doc) -> tuple[int, Any]:
        value = doc.get(column)
        if value is None:
            return (0, "")
        if _is_number(value):
            return (1, float(value))
        return (2, str(value).casefold())

    return key


# --- a small company ------------------------------------------------------------------------


def seed(standin: ErpNextStandIn) -> None:
    """Omni Supplies GmbH (EUR, warehouses Stores / Finished Goods / Berlin Shop) and, on the
    same site, Other Co (USD, warehouse Main - OC).

    Customers: Kim Lee (email, mobile and tax id on the Customer); Nordwind AG (reached
    through its Contact Jonas Berg: two emails, a phone and a mobile); a Contact linked to a
    Supplier only. Kim Lee's orders, oldest first: 00001 completed (delivered with a DHL
    Shipment, paid), 00002 half delivered (UPS, a delivery note only; invoiced twice over two
    lines, partly paid), 00003 confirmed, 00004 cancelled, 00005 a draft; 00006 at Other Co;
    an overdue invoice without an order. Items: CHAIR-1 and DESK-120 (selling prices),
    LAMP-LED (a standard rate only), a template, a disabled chair, a service; CHAIR-1's stock
    in four warehouses."""
    add = standin.add
    add("Company", company_name="Omni Supplies GmbH", abbr="OS", default_currency="EUR")
    add("Company", company_name="Other Co", abbr="OC", default_currency="USD")
    for warehouse in ("Stores", "Finished Goods", "Berlin Shop"):
        add(
            "Warehouse",
            f"{warehouse} - OS",
            warehouse_name=warehouse,
            company="Omni Supplies GmbH",
        )
    add(
        "Warehouse",
        "All Warehouses - OS",
        warehouse_name="All Warehouses",
        company="Omni Supplies GmbH",
        is_group=1,
    )
    add("Warehouse", "Main - OC", warehouse_name="Main", company="Other Co")

    add(
        "Customer",
        customer_name="Kim Lee",
        customer_type="Individual",
        customer_group="Commercial",
        territory="Germany",
        email_id="kim.lee@example.com",
        mobile_no="+49 170 1234567",
        tax_id="DE123456789",
    )
    add(
        "Customer",
        customer_name="Nordwind AG",
        customer_type="Company",
        customer_group="Wholesale",
        territory="Germany",
    )
    add(
        "Customer",
        customer_name="Gone GmbH",
        customer_group="Commercial",
        disabled=1,
        email_id="old@gone.example",
    )
    add(
        "Contact",
        "Jonas Berg-Nordwind AG",
        first_name="Jonas",
        last_name="Berg",
        full_name="Jonas Berg",
        email_id="jonas@nordwind.example",
        phone="030 1234567",
        mobile_no="+49 171 5550100",
        status="Passive",
        email_ids=[
            {"email_id": "jonas@nordwind.example", "is_primary": 1},
            {"email_id": "j.berg@nordwind.example"},
        ],
        phone_nos=[
            {"phone": "030 1234567", "is_primary_phone": 1},
            {"phone": "+49 171 5550100", "is_primary_mobile_no": 1},
        ],
        links=[
            {"link_doctype": "Customer", "link_name": "Nordwind AG", "link_title": "Nordwind AG"}
        ],
    )
    add(
        "Contact",
        "Sam Supplier",
        first_name="Sam",
        email_id="sam@supplier.example",
        email_ids=[{"email_id": "sam@supplier.example", "is_primary": 1}],
        links=[{"link_doctype": "Supplier", "link_name": "Parts Ltd"}],
    )

    add(
        "Item",
        item_code="CHAIR-1",
        item_name="Desk chair",
        item_group="Furniture",
        stock_uom="Nos",
        standard_rate=149.0,
        is_sales_item=1,
        is_stock_item=1,
    )
    add(
        "Item",
        item_code="DESK-120",
        item_name="Standing desk 120 cm",
        item_group="Furniture",
        stock_uom="Nos",
        standard_rate=499.0,
        is_sales_item=1,
        is_stock_item=1,
    )
    add(
        "Item",
        item_code="LAMP-LED",
        item_name="LED desk lamp",
        item_group="Lighting",
        stock_uom="Nos",
        standard_rate=39.9,
        is_sales_item=1,
        is_stock_item=1,
    )
    add(
        "Item",
        item_code="CHAIR-TPL",
        item_name="Desk chair (template)",
        item_group="Furniture",
        has_variants=1,
        is_sales_item=1,
    )
    add(
        "Item",
        item_code="CHAIR-OLD",
        item_name="Desk chair 2019",
        item_group="Furniture",
        disabled=1,
        is_sales_item=1,
    )
    add(
        "Item",
        item_code="SVC-ASSEMBLY",
        item_name="Chair assembly",
        item_group="Services",
        standard_rate=25.0,
        is_sales_item=1,
    )
    add(
        "Item Price",
        item_code="CHAIR-1",
        item_name="Desk chair",
        price_list="Standard Selling",
        price_list_rate=149.0,
        currency="EUR",
        selling=1,
    )
    add(
        "Item Price",
        item_code="CHAIR-1",
        item_name="Desk chair",
        price_list="Standard Buying",
        price_list_rate=80.0,
        currency="EUR",
        buying=1,
    )
    add(
        "Item Price",
        item_code="CHAIR-1",
        item_name="Desk chair",
        price_list="Standard Selling",
        price_list_rate=129.0,
        currency="EUR",
        selling=1,
        customer="Nordwind AG",
    )
    add(
        "Item Price",
        item_code="DESK-120",
        item_name="Standing desk 120 cm",
        price_list="Standard Selling",
        price_list_rate=499.0,
        currency="EUR",
        selling=1,
    )
    for warehouse, actual, reserved in (
        ("Stores - OS", 12.0, 3.0),
        ("Finished Goods - OS", 5.0, 0.0),
        ("Berlin Shop - OS", 2.0, 2.0),
        ("Main - OC", 100.0, 0.0),
    ):
        add(
            "Bin",
            item_code="CHAIR-1",
            warehouse=warehouse,
            actual_qty=actual,
            reserved_qty=reserved,
            projected_qty=actual - reserved,
            stock_uom="Nos",
        )

    def order(
        day: str,
        status: str,
        docstatus: int,
        items: Sequence[tuple[str, str, float, float]],
        **more: Any,
    ) -> Doc:
        total = sum(qty * rate for _, _, qty, rate in items)
        return add(
            "Sales Order",
            customer=more.pop("customer", "Kim Lee"),
            customer_name="Kim Lee",
            company=more.pop("company", "Omni Supplies GmbH"),
            order_type="Sales",
            transaction_date=day,
            delivery_date=day,
            status=status,
            docstatus=docstatus,
            total=total,
            grand_total=total,
            rounded_total=total,
            currency=more.pop("currency", "EUR"),
            items=[
                {
                    "item_code": code,
                    "item_name": title,
                    "qty": qty,
                    "rate": rate,
                    "amount": qty * rate,
                    "uom": "Nos",
                    "warehouse": "Stores - OS",
                }
                for code, title, qty, rate in items
            ],
            **more,
        )

    chair = ("CHAIR-1", "Desk chair", 2.0, 149.0)
    first = order(
        "2026-01-10",
        "Completed",
        1,
        [chair],
        per_delivered=100.0,
        per_billed=100.0,
        delivery_status="Fully Delivered",
        billing_status="Fully Billed",
    )
    second = order(
        "2026-02-03",
        "To Deliver and Bill",
        1,
        [("CHAIR-1", "Desk chair", 1.0, 149.0), ("DESK-120", "Standing desk 120 cm", 1.0, 499.0)],
        per_delivered=50.0,
        per_billed=23.0,
        delivery_status="Partly Delivered",
        billing_status="Partly Billed",
    )
    order("2026-02-20", "To Deliver and Bill", 1, [("LAMP-LED", "LED desk lamp", 3.0, 39.9)])
    order("2026-02-25", "Cancelled", 2, [chair])
    order("2026-03-01", "Draft", 0, [chair])
    order("2026-03-02", "To Deliver and Bill", 1, [chair], company="Other Co", currency="USD")

    note = add(
        "Delivery Note",
        customer="Kim Lee",
        company="Omni Supplies GmbH",
        posting_date="2026-01-12",
        posting_time="9:30:00",
        status="Completed",
        docstatus=1,
        grand_total=298.0,
        currency="EUR",
        transporter_name="DHL Paket",
        lr_no="JJD0001",
        items=[
            {
                "item_code": "CHAIR-1",
                "item_name": "Desk chair",
                "qty": 2.0,
                "against_sales_order": first["name"],
            }
        ],
    )
    add(
        "Shipment",
        status="Booked",
        docstatus=1,
        carrier="DHL",
        carrier_service="Paket",
        awb_number="JJD000390007812345",
        tracking_url="https://www.dhl.de/track?piececode=JJD000390007812345",
        tracking_status="Delivered",
        shipment_delivery_note=[{"delivery_note": note["name"], "grand_total": 298.0}],
    )
    add(
        "Delivery Note",
        customer="Kim Lee",
        company="Omni Supplies GmbH",
        posting_date="2026-02-05",
        posting_time="14:05:09.125000",
        status="To Bill",
        docstatus=1,
        grand_total=149.0,
        currency="EUR",
        transporter_name="UPS",
        lr_no="1Z999AA10123456784",
        items=[
            {
                "item_code": "CHAIR-1",
                "item_name": "Desk chair",
                "qty": 1.0,
                "against_sales_order": second["name"],
            }
        ],
    )
    add(
        "Delivery Note",
        customer="Kim Lee",
        company="Omni Supplies GmbH",
        posting_date="2026-02-06",
        posting_time="10:00:00",
        status="Draft",
        docstatus=0,
        items=[
            {
                "item_code": "DESK-120",
                "item_name": "Standing desk 120 cm",
                "qty": 1.0,
                "against_sales_order": second["name"],
            }
        ],
    )

    def invoice(
        day: str,
        due: str,
        status: str,
        total: float,
        outstanding: float,
        items: list[Doc],
        **more: Any,
    ) -> Doc:
        return add(
            "Sales Invoice",
            customer="Kim Lee",
            customer_name="Kim Lee",
            company="Omni Supplies GmbH",
            posting_date=day,
            due_date=due,
            status=status,
            docstatus=more.pop("docstatus", 1),
            grand_total=total,
            rounded_total=total,
            outstanding_amount=outstanding,
            currency="EUR",
            items=items,
            **more,
        )

    invoice(
        "2026-01-05",
        "2026-02-04",
        "Overdue",
        59.9,
        59.9,
        [
            {
                "item_code": "SVC-ASSEMBLY",
                "item_name": "Chair assembly",
                "qty": 1.0,
                "rate": 59.9,
                "amount": 59.9,
            }
        ],
    )
    invoice(
        "2026-01-12",
        "2026-02-11",
        "Paid",
        298.0,
        0.0,
        [
            {
                "item_code": "CHAIR-1",
                "item_name": "Desk chair",
                "qty": 2.0,
                "rate": 149.0,
                "amount": 298.0,
                "sales_order": first["name"],
            }
        ],
    )
    invoice(
        "2026-02-05",
        "2026-03-07",
        "Partly Paid",
        149.0,
        49.0,
        [
            {
                "item_code": "CHAIR-1",
                "item_name": "Desk chair",
                "qty": 1.0,
                "rate": 124.0,
                "amount": 124.0,
                "sales_order": second["name"],
            },
            {
                "item_code": "SVC-ASSEMBLY",
                "item_name": "Chair assembly",
                "qty": 1.0,
                "rate": 25.0,
                "amount": 25.0,
                "sales_order": second["name"],
            },
        ],
    )
    invoice(
        "2026-02-06",
        "2026-03-08",
        "Draft",
        499.0,
        499.0,
        [
            {
                "item_code": "DESK-120",
                "qty": 1.0,
                "rate": 499.0,
                "amount": 499.0,
                "sales_order": second["name"],
            }
        ],
        docstatus=0,
    )

    add(
        "Sales Order",
        customer="Nordwind AG",
        customer_name="Nordwind AG",
        company="Omni Supplies GmbH",
        transaction_date="2026-02-11",
        status="On Hold",
        docstatus=1,
        grand_total=1490.0,
        currency="EUR",
        items=[
            {
                "item_code": "CHAIR-1",
                "item_name": "Desk chair",
                "qty": 10.0,
                "rate": 149.0,
                "amount": 1490.0,
            }
        ],
    )
