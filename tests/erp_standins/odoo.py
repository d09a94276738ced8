"""A stand-in for Odoo in the tests: its two external APIs over an in-memory database.

`OdooStandIn` is an aiohttp server that answers as an Odoo server of a given `version`:

- **JSON-2** (version 19 and later): `POST /json/2/<model>/<method>`, `Authorization: bearer
  <key>` (401 `werkzeug.exceptions.Unauthorized` "Invalid apikey" otherwise),
  `X-Odoo-Database` naming the database (404 otherwise), the method's named parameters, `ids`
  and `context` in the body; errors as Odoo's JSON error object (`name`, `message`,
  `arguments`, `context`, `debug`) with 403 (access), 404 (unknown model or method), 422
  (user errors, wrong parameters) or 500. Before 19 the path is an HTML 404 page.
- **JSON-RPC** (every version): `POST /jsonrpc`, services `common` (`version`,
  `authenticate`, `login`) and `object` (`execute_kw(db, uid, key, model, method, args,
  kwargs)`); errors in the body with HTTP 200 (`code` 200 up to 18, 0 from 19; `data.name`
  `odoo.exceptions.AccessDenied` for a wrong key or uid).
- `GET /web/version`.

Model methods: `search_read`, `search`, `search_count`, `read`, `fields_get`, and
`res.users.context_get`; positional arguments bind like Odoo's signatures, unknown ones are a
`TypeError` (422 in JSON-2). Domains in prefix notation (`&`, `|`, `!`) with `=`, `!=`, `in`,
`not in`, `<`, `<=`, `>`, `>=`, `like`, `ilike`, `=like`, `=ilike` (SQL wildcards, not
escaped, as Odoo) and `child_of`; `order` on stored scalar fields (NULLs last ascending,
first descending, as PostgreSQL); `limit`/`offset`; `active_test`. Records come as Odoo
writes them: many2one `[id, "display name"]`, `false` for every empty value, x2many as id
lists, dates "YYYY-MM-DD", datetimes "YYYY-MM-DD HH:MM:SS" (UTC). An unknown field is
Odoo's `ValueError: Invalid field ...`.

Version differences it plays: `sale.order.delivery_status` from 17 (computed from the
pickings), a locked confirmed order is state `done` before 17, the stock context key is
`warehouse` up to 17 and `warehouse_id` from 18, `res.partner.mobile` is gone in 19.

Requests that a real client must not send are answered with an error *and* listed in
`violations` (search_read/read without `fields`, an execute_kw of the wrong shape, JSON-2
without the database header), which the tests assert empty. Every request is in `calls`.
`script(...)` queues faults for the next requests: an HTTP status with a body, an Odoo error,
a delay, or a hang (until `close()`); `latency` delays every answer.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

DATABASE = "acme"
LOGIN = "admin"
API_KEY = "0f3c9d2e7a" * 4
UID = 2
USER_NAME = "Mitchell Admin"
TRACEBACK = 'Traceback (most recent call last):\n  File "/opt/odoo/odoo/http.py", line 1\n'


# --- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """A field: its type, comodel, the versions that have it, and how it is computed."""

    type: str
    relation: str | None = None
    since: int = 0
    until: int = 99
    compute: Callable[[OdooStandIn, dict[str, Any], dict[str, Any]], Any] | None = None
    searchable: bool = True


def _commercial(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    partner = record
    while not partner.get("is_company") and partner.get("parent_id"):
        partner = odoo.record("res.partner", partner["parent_id"])
    return partner["id"]


def _email_normalized(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    email = record.get("email")
    match = re.search(r"[^\s<>,;]+@[^\s<>,;]+", email or "")
    return match.group(0).lower() if match else None


def _invoice_ids(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    return [
        move["id"]
        for move in odoo.table("account.move")
        if record["id"] in move.get("sale_order_ids", [])
    ]


def _delivery_status(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    pickings = [
        p
        for p in odoo.table("stock.picking")
        if p.get("sale_id") == record["id"] and p["state"] != "cancel"
    ]
    if not pickings:
        return None
    done = [p for p in pickings if p["state"] == "done"]
    if len(done) == len(pickings):
        return "full"
    if done:
        return "partial"
    if any(p.get("started") for p in pickings):
        return "started"
    return "pending"


def _order_state(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    if odoo.version < 17 and record["state"] == "sale" and record.get("locked"):
        return "done"
    return record["state"]


def _tracking_url(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    carrier = record.get("carrier_id")
    if not carrier or not record.get("carrier_tracking_ref"):
        return None
    template = odoo.record("delivery.carrier", carrier).get("tracking_template")
    return template.format(ref=record["carrier_tracking_ref"]) if template else None


def _quantity(kind: str) -> Callable[[OdooStandIn, dict[str, Any], dict[str, Any]], Any]:
    def compute(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
        key = "warehouse_id" if odoo.version >= 18 else "warehouse"
        warehouse = context.get(key)
        total = 0.0
        for (product, where), level in odoo.stock.items():
            if product != record["id"] or (warehouse and where != warehouse):
                continue
            if kind == "qty_available":
                total += level.on_hand
            elif kind == "free_qty":
                total += level.on_hand - level.reserved
            else:
                total += level.on_hand + level.incoming - level.outgoing
        return round(total, 3)

    return compute


def _signed_total(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    """The total in the company's currency, negative for credit notes and vendor bills (as
    Odoo stores it since 13); a foreign-currency move gives its converted amount when added."""
    if record.get("amount_total_signed") is not None:
        return record["amount_total_signed"]
    assert record.get("currency_id") in (None, COMPANY_CURRENCY), "give amount_total_signed"
    sign = -1 if record.get("move_type") in ("out_refund", "in_invoice") else 1
    return sign * float(record.get("amount_total") or 0.0)


def _company_currency(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    return COMPANY_CURRENCY  # one company, in EUR


def _line_currency(odoo: OdooStandIn, record: dict[str, Any], context: dict[str, Any]) -> Any:
    return odoo.record("sale.order", record["order_id"])["currency_id"]


SCHEMA: dict[str, tuple[str, dict[str, F]]] = {
    "res.currency": ("Currency", {"name": F("char")}),
    "res.users": ("User", {"name": F("char"), "login": F("char")}),
    "product.pricelist": ("Pricelist", {"name": F("char"), "currency_id": F("many2one")}),
    "delivery.carrier": ("Shipping Methods", {"name": F("char")}),
    "res.partner": (
        "Contact",
        {
            "name": F("char"),
            "ref": F("char"),
            "email": F("char"),
            "email_normalized": F("char", compute=_email_normalized),
            "phone": F("char"),
            "mobile": F("char", until=18),
            "vat": F("char"),
            "is_company": F("boolean"),
            "parent_id": F("many2one", "res.partner"),
            "commercial_partner_id": F("many2one", "res.partner", compute=_commercial),
            "property_product_pricelist": F("many2one", "product.pricelist"),
            "active": F("boolean"),
        },
    ),
    "sale.order": (
        "Sales Order",
        {
            "name": F("char"),
            "date_order": F("datetime"),
            "state": F("selection", compute=_order_state),
            "locked": F("boolean", since=17),
            "amount_total": F("monetary"),
            "currency_id": F("many2one", "res.currency"),
            "invoice_status": F("selection"),
            "partner_id": F("many2one", "res.partner"),
            "invoice_ids": F("many2many", "account.move", compute=_invoice_ids),
            "delivery_status": F("selection", since=17, compute=_delivery_status),
        },
    ),
    "sale.order.line": (
        "Sales Order Line",
        {
            "order_id": F("many2one", "sale.order"),
            "sequence": F("integer"),
            "product_id": F("many2one", "product.product"),
            "name": F("text"),
            "product_uom_qty": F("float"),
            "price_unit": F("float"),
            "price_subtotal": F("monetary"),
            "currency_id": F("many2one", "res.currency", compute=_line_currency),
            "display_type": F("selection"),
        },
    ),
    "account.move": (
        "Journal Entry",
        {
            "name": F("char"),
            "move_type": F("selection"),
            "state": F("selection"),
            "partner_id": F("many2one", "res.partner"),
            "invoice_origin": F("char"),
            "invoice_date": F("date"),
            "invoice_date_due": F("date"),
            "amount_total": F("monetary"),
            "amount_total_signed": F("monetary", compute=_signed_total),
            "amount_residual": F("monetary"),
            "payment_state": F("selection"),
            "currency_id": F("many2one", "res.currency"),
            "company_currency_id": F(
                "many2one", "res.currency", compute=_company_currency, searchable=False
            ),
        },
    ),
    "stock.picking": (
        "Transfer",
        {
            "name": F("char"),
            "state": F("selection"),
            "origin": F("char"),
            "picking_type_code": F("selection"),
            "sale_id": F("many2one", "sale.order"),
            "date_done": F("datetime"),
            "carrier_id": F("many2one", "delivery.carrier"),
            "carrier_tracking_ref": F("char"),
            "carrier_tracking_url": F("char", compute=_tracking_url, searchable=False),
        },
    ),
    "stock.warehouse": (
        "Warehouse",
        {"name": F("char"), "code": F("char"), "sequence": F("integer")},
    ),
    "product.product": (
        "Product Variant",
        {
            "default_code": F("char"),
            "name": F("char"),
            "lst_price": F("float"),
            "currency_id": F("many2one", "res.currency"),
            "sale_ok": F("boolean"),
            "active": F("boolean"),
            "qty_available": F("float", compute=_quantity("qty_available"), searchable=False),
            "free_qty": F("float", compute=_quantity("free_qty"), searchable=False),
            "virtual_available": F(
                "float", compute=_quantity("virtual_available"), searchable=False
            ),
        },
    ),
}
# One2many/many2one comodels left implicit above.
RELATIONS = {
    ("product.pricelist", "currency_id"): "res.currency",
    ("res.partner", "parent_id"): "res.partner",
}


def _signature(*names: str, **defaults: Any) -> inspect.Signature:
    """A method's signature after `self`: `names` required, then `defaults`."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(name, kind) for name in names]
        + [inspect.Parameter(name, kind, default=value) for name, value in defaults.items()]
    )


# Odoo's signatures for the methods the stand-in serves; True: called on records (ids first).
SIGNATURES: dict[str, tuple[inspect.Signature, bool]] = {
    "search_read": (
        _signature(domain=None, fields=None, offset=0, limit=None, order=None),
        False,
    ),
    "search": (_signature("domain", offset=0, limit=None, order=None), False),
    "search_count": (_signature("domain", limit=None), False),
    "read": (_signature(fields=None, load="_classic_read"), True),
    "fields_get": (_signature(allfields=None, attributes=None), False),
    "context_get": (_signature(), False),
}


# --- errors, as Odoo raises them --------------------------------------------------------------


class OdooRaised(Exception):
    """An exception of the stand-in's "Odoo": its qualified name, message and HTTP status
    (JSON-2)."""

    def __init__(self, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status


def access_denied() -> OdooRaised:
    return OdooRaised("odoo.exceptions.AccessDenied", "Access Denied", 403)


def access_error(model: str) -> OdooRaised:
    label = SCHEMA[model][0] if model in SCHEMA else model
    return OdooRaised(
        "odoo.exceptions.AccessError",
        f"You are not allowed to access '{label}' ({model}) records.\n\nThis operation is "
        "allowed for the following groups:\n\t- Sales/User: Own Documents Only",
        403,
    )


def user_error(message: str) -> OdooRaised:
    return OdooRaised("odoo.exceptions.UserError", message, 422)


def value_error(message: str) -> OdooRaised:
    return OdooRaised("builtins.ValueError", message, 500)


# --- scripting ----------------------------------------------------------------------------------


@dataclass
class Fault:
    """A scripted answer to one request: an HTTP `status` with `body` (e.g. a proxy's 502
    page), an Odoo exception (`error`: qualified name, message, JSON-2 status), a `delay`
    before the normal answer, or a `hang` until the stand-in closes."""

    status: int | None = None
    body: str = ""
    content_type: str = "text/html"
    error: tuple[str, str, int] | None = None
    delay: float = 0.0
    hang: bool = False


@dataclass
class Level:
    on_hand: float
    reserved: float = 0.0
    incoming: float = 0.0
    outgoing: float = 0.0


@dataclass
class Call:
    """One request as the stand-in understood it."""

    protocol: str  # json2, jsonrpc, http
    model: str | None
    method: str
    params: dict[str, Any] = field(default_factory=dict)  # named, positional ones bound
    context: dict[str, Any] = field(default_factory=dict)
    ids: list[int] | None = None
    raw_args: list[Any] | None = None  # execute_kw's positional args
    headers: dict[str, str] = field(default_factory=dict)


# --- the server ---------------------------------------------------------------------------------


class OdooStandIn:
    def __init__(
        self,
        version: int = 19,
        *,
        database: str = DATABASE,
        login: str = LOGIN,
        api_key: str = API_KEY,
        user_name: str = USER_NAME,
    ) -> None:
        self.version = version
        self.database = database
        self.login = login
        self.api_key = api_key
        self.tables: dict[str, dict[int, dict[str, Any]]] = {model: {} for model in SCHEMA}
        self.stock: dict[tuple[int, int], Level] = {}
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.latency = 0.0  # seconds before every answer
        self.forbidden: set[str] = set()  # models the user may not read
        self.hidden_fields: dict[str, set[str]] = {}  # fields this database lacks
        self.missing_models: set[str] = set()  # models of modules not installed
        self.server: TestServer | None = None
        self._closing = asyncio.Event()
        self.add("res.users", UID, name=user_name, login=login)

    # --- data ---------------------------------------------------------------------------------

    def add(self, model: str, record_id: int, **values: Any) -> dict[str, Any]:
        fields = SCHEMA[model][1]
        unknown = set(values) - set(fields) - {"sale_order_ids", "started", "tracking_template"}
        assert not unknown, f"{model} has no {unknown}"
        record: dict[str, Any] = {"id": record_id, **values}
        if "active" in fields:
            record.setdefault("active", True)
        self.tables[model][record_id] = record
        return record

    def set_stock(self, product: int, warehouse: int, level: Level) -> None:
        self.stock[(product, warehouse)] = level

    def table(self, model: str) -> list[dict[str, Any]]:
        return list(self.tables[model].values())

    def record(self, model: str, record_id: int) -> dict[str, Any]:
        return self.tables[model][record_id]

    def fields_of(self, model: str) -> dict[str, F]:
        hidden = self.hidden_fields.get(model, set())
        return {
            name: f
            for name, f in SCHEMA[model][1].items()
            if f.since <= self.version <= f.until and name not in hidden
        }

    # --- scripting ----------------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def object_calls(self, model: str | None = None, method: str | None = None) -> list[Call]:
        """The model method calls (either protocol), optionally of one model/method."""
        return [
            c
            for c in self.calls
            if c.model is not None
            and (model is None or c.model == model)
            and (method is None or c.method == method)
        ]

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/json/2/{model}/{method}", self._json2)
        app.router.add_post("/jsonrpc", self._jsonrpc)
        app.router.add_get("/web/version", self._web_version)
        self.server = TestServer(app)
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self.server is not None:
            await self.server.close()

    async def _fault(self) -> Fault | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self.faults:
            return None
        fault = self.faults.pop(0)
        if fault.hang:
            await self._closing.wait()
        elif fault.delay:
            await asyncio.sleep(fault.delay)
        return fault

    def _violation(self, what: str) -> OdooRaised:
        self.violations.append(what)
        return OdooRaised("standin.BadRequest", f"the stand-in refuses: {what}", 400)

    # --- JSON-2 ---------------------------------------------------------------------------------

    async def _json2(self, request: web.Request) -> web.StreamResponse:
        model, method = request.match_info["model"], request.match_info["method"]
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith(("x-", "auth"))}
        call = Call("json2", model, method, headers=headers)
        self.calls.append(call)
        fault = await self._fault()
        if fault is not None and (answer := self._json2_fault(fault)) is not None:
            return answer
        if self.version < 19:
            return web.Response(status=404, text="<h1>Not Found</h1>", content_type="text/html")
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key != self.api_key:
            return _json2_error(
                OdooRaised("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
            )
        if request.headers.get("X-Odoo-Database") != self.database:
            if "X-Odoo-Database" not in request.headers:
                self.violations.append("JSON-2 request without X-Odoo-Database")
            return _json2_error(
                OdooRaised(
                    "werkzeug.exceptions.NotFound",
                    "The requested URL was not found on the server. If you entered the URL "
                    "manually please check your spelling and try again.",
                    404,
                )
            )
        if request.content_type != "application/json":
            self.violations.append(f"JSON-2 body sent as {request.content_type}")
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            return _json2_error(OdooRaised("werkzeug.exceptions.BadRequest", str(exc), 400))
        if not isinstance(body, dict):
            body = {}
        ids = body.pop("ids", None)
        context = body.pop("context", None) or {}
        call.params, call.context, call.ids = dict(body), dict(context), ids
        try:
            if model not in SCHEMA or model in self.missing_models:
                raise OdooRaised(
                    "werkzeug.exceptions.NotFound", f"the model {model!r} does not exist", 404
                )
            result = self._execute(model, method, [], body, context, ids, call)
        except OdooRaised as exc:
            return _json2_error(exc)
        return web.json_response(result)

    def _json2_fault(self, fault: Fault) -> web.Response | None:
        if fault.error is not None:
            return _json2_error(OdooRaised(*fault.error))
        if fault.status is not None:
            return web.Response(
                status=fault.status, text=fault.body, content_type=fault.content_type
            )
        return None

    # --- JSON-RPC -------------------------------------------------------------------------------

    async def _jsonrpc(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="Invalid JSON data")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="Invalid JSON-RPC data")
        request_id = payload.get("id")
        params = payload.get("params") or {}
        service, method = params.get("service"), params.get("method")
        args = params.get("args") or []
        call = Call("jsonrpc", None, f"{service}.{method}", raw_args=args)
        self.calls.append(call)
        fault = await self._fault()
        if fault is not None:
            if fault.error is not None:
                return self._rpc_error(request_id, OdooRaised(*fault.error))
            if fault.status is not None:
                return web.Response(
                    status=fault.status, text=fault.body, content_type=fault.content_type
                )
        if payload.get("jsonrpc") != "2.0" or payload.get("method") != "call":
            self.violations.append(f"not a JSON-RPC 2.0 call: {payload!r}"[:200])
        try:
            if service == "common":
                result = self._common(str(method), args)
            elif service == "object" and method == "execute_kw":
                result = self._execute_kw(args, call)
            else:
                raise self._violation(f"service {service}.{method}")
        except OdooRaised as exc:
            return self._rpc_error(request_id, exc)
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if result is not None:
            answer["result"] = result
        return web.json_response(answer)

    def _rpc_error(self, request_id: Any, exc: OdooRaised) -> web.Response:
        error = {
            "code": 200 if self.version <= 18 else 0,
            "message": "Odoo Server Error",
            "data": _serialized(exc),
        }
        return web.json_response({"jsonrpc": "2.0", "id": request_id, "error": error})

    def _common(self, method: str, args: list[Any]) -> Any:
        if method == "version":
            return {
                "server_version": f"{self.version}.0",
                "server_version_info": [self.version, 0, 0, "final", 0, ""],
                "server_serie": f"{self.version}.0",
                "protocol_version": 1,
            }
        if method in ("authenticate", "login"):
            if len(args) != (4 if method == "authenticate" else 3):
                raise self._violation(f"common.{method} with {len(args)} arguments")
            db, login, password = args[:3]
            self._check_db(db)
            return UID if (login, password) == (self.login, self.api_key) else False
        raise self._violation(f"common.{method}")

    def _check_db(self, db: Any) -> None:
        if db != self.database:
            raise OdooRaised(
                "psycopg2.OperationalError",
                f'connection to server failed: FATAL:  database "{db}" does not exist',
            )

    def _execute_kw(self, args: list[Any], call: Call) -> Any:
        if len(args) not in (6, 7):
            raise self._violation(f"execute_kw with {len(args)} arguments")
        db, uid, password, model, method, positional = args[:6]
        kwargs = args[6] if len(args) == 7 else {}
        if not isinstance(positional, list) or not isinstance(kwargs, dict):
            raise self._violation("execute_kw args must be a list and kwargs an object")
        self._check_db(db)
        if uid != UID or password != self.api_key:
            raise access_denied()
        kwargs = dict(kwargs)
        context = kwargs.pop("context", None) or {}
        call.model, call.method, call.context = model, method, dict(context)
        if model not in SCHEMA or model in self.missing_models:
            raise user_error(f"Object {model} doesn't exist")
        ids = None
        if SIGNATURES.get(method, (None, False))[1]:
            if not positional:
                raise OdooRaised("builtins.TypeError", f"{method}() missing the record ids")
            ids, positional = positional[0], positional[1:]
        call.ids = ids
        return self._execute(model, method, positional, kwargs, context, ids, call)

    # --- /web/version -------------------------------------------------------------------------

    async def _web_version(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call("http", None, "/web/version"))
        fault = await self._fault()
        if fault is not None and fault.status is not None:
            return web.Response(status=fault.status, text=fault.body)
        return web.json_response(
            {
                "version_info": [self.version, 0, 0, "final", 0, ""],
                "version": f"{self.version}.0",
            }
        )

    # --- the ORM --------------------------------------------------------------------------------

    def _execute(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any],
        context: dict[str, Any],
        ids: list[int] | None,
        call: Call,
    ) -> Any:
        if method not in SIGNATURES:
            raise OdooRaised(
                "werkzeug.exceptions.NotFound",
                f"The method {method!r} does not exist on the model {model!r}",
                404,
            )
        signature, on_records = SIGNATURES[method]
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise OdooRaised("werkzeug.exceptions.UnprocessableEntity", str(exc), 422) from None
        if on_records and ids is None:
            raise OdooRaised("werkzeug.exceptions.UnprocessableEntity", "ids are missing", 422)
        if not on_records and ids:
            raise OdooRaised(
                "werkzeug.exceptions.UnprocessableEntity",
                f"cannot call {model}.{method} with ids",
                422,
            )
        bound.apply_defaults()
        params = dict(bound.arguments)
        call.params = params
        if model in self.forbidden:
            raise access_error(model)
        if method == "context_get":
            return {"lang": "en_US", "tz": "Europe/Berlin", "uid": UID}
        if method == "fields_get":
            return self._fields_get(model, params["allfields"], params["attributes"])
        if method == "read":
            if not params["fields"]:
                raise self._violation(f"{model}.read without fields")
            found = [self.tables[model][i] for i in ids or () if i in self.tables[model]]
            if len(found) != len(ids or ()):
                raise OdooRaised(
                    "odoo.exceptions.MissingError",
                    "Record does not exist or has been deleted.",
                    404,
                )
            return [self._render(model, r, params["fields"], context) for r in found]
        records = self._search(model, params["domain"], context)
        if method == "search_count":
            return len(records)
        records = self._ordered(model, records, params.get("order"), context)
        offset = params.get("offset") or 0
        limit = params.get("limit")
        records = records[offset : offset + limit if limit else None]
        if method == "search":
            return [r["id"] for r in records]
        if not params["fields"]:
            raise self._violation(f"{model}.search_read without fields")
        return [self._render(model, r, params["fields"], context) for r in records]

    def _fields_get(self, model: str, allfields: Any, attributes: Any) -> dict[str, Any]:
        fields = self.fields_of(model)
        names = allfields or list(fields)
        answer = {}
        for name in ["id", *fields] if not allfields else names:
            if name != "id" and name not in fields:
                continue
            f = fields.get(name, F("integer"))
            description = {"type": f.type, "string": name.replace("_", " ").title()}
            if f.type in ("many2one", "one2many", "many2many"):
                description["relation"] = self._comodel(model, name)
            answer[name] = (
                {k: v for k, v in description.items() if k in attributes}
                if attributes
                else description
            )
        return answer

    def _comodel(self, model: str, name: str) -> str:
        f = SCHEMA[model][1][name]
        comodel = f.relation or RELATIONS.get((model, name))
        if comodel is None:
            comodel = {"currency_id": "res.currency", "carrier_id": "delivery.carrier"}.get(name)
        assert comodel is not None, (model, name)
        return comodel

    def _value(self, model: str, record: dict[str, Any], name: str, context: dict[str, Any]) -> Any:
        if name == "id":
            return record["id"]
        f = self.fields_of(model).get(name)
        if f is None:
            raise value_error(f"Invalid field {name!r} on model {model!r}")
        if f.compute is not None:
            return f.compute(self, record, context)
        return record.get(name)

    def _render(
        self, model: str, record: dict[str, Any], names: list[str], context: dict[str, Any]
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"id": record["id"]}
        for name in names:
            value = self._value(model, record, name, context)
            f = self.fields_of(model).get(name, F("integer"))
            row[name] = self._wire(model, name, f, value)
        return row

    def _wire(self, model: str, name: str, f: F, value: Any) -> Any:
        if f.type == "many2one":
            if not value:
                return False
            return [value, self.display_name(self._comodel(model, name), value)]
        if f.type in ("one2many", "many2many"):
            return list(value or [])
        if f.type in ("float", "monetary"):
            return float(value or 0.0)
        if f.type == "integer":
            return int(value or 0)
        if f.type == "boolean":
            return bool(value)
        return value if value not in (None, "") else False

    def display_name(self, model: str, record_id: int) -> str:
        record = self.tables[model].get(record_id)
        if record is None:
            return f"{model},{record_id}"
        if model == "res.partner" and record.get("parent_id") and not record.get("is_company"):
            parent = self.display_name("res.partner", record["parent_id"])
            return f"{parent}, {record['name']}"
        if model == "product.product" and record.get("default_code"):
            return f"[{record['default_code']}] {record['name']}"
        return str(record.get("name") or f"{model},{record_id}")

    # --- domains and order -----------------------------------------------------------------------

    def _search(self, model: str, domain: Any, context: dict[str, Any]) -> list[dict[str, Any]]:
        if domain is None:
            domain = []
        if not isinstance(domain, list):
            raise value_error(f"Invalid domain: {domain!r}")
        conditions = _parse(domain)
        records = self.table(model)
        if "active" in self.fields_of(model) and context.get("active_test", True):
            named = {name for condition in conditions for name in _leaf_names(condition)}
            if "active" not in named:  # Odoo adds ("active", "=", True) unless asked
                records = [r for r in records if r.get("active", True)]
        return [r for r in records if all(self._holds(model, r, c, context) for c in conditions)]

    def _holds(
        self, model: str, record: dict[str, Any], term: Any, context: dict[str, Any]
    ) -> bool:
        if term[0] == "&":
            return self._holds(model, record, term[1], context) and self._holds(
                model, record, term[2], context
            )
        if term[0] == "|":
            return self._holds(model, record, term[1], context) or self._holds(
                model, record, term[2], context
            )
        if term[0] == "!":
            return not self._holds(model, record, term[1], context)
        name, operator, wanted = term[1]
        if "." in name:
            raise self._violation(f"a dotted path in a domain: {name}")
        f = self.fields_of(model).get(name)
        if name != "id" and f is None:
            raise value_error(f"Invalid field {model}.{name} in condition {term[1]!r}")
        if f is not None and not f.searchable:
            raise value_error(f"Non-stored field {model}.{name} cannot be searched.")
        value = self._value(model, record, name, context)
        return self._compare(model, name, value, operator, wanted)

    def _compare(self, model: str, name: str, value: Any, operator: str, wanted: Any) -> bool:
        if isinstance(value, list):  # x2many: any of its ids
            return any(self._compare(model, name, v, operator, wanted) for v in value) or (
                operator == "=" and wanted is False and not value
            )
        if wanted is False and operator in ("=", "!="):
            empty = value in (None, False, "")
            return empty if operator == "=" else not empty
        if operator == "=":
            return bool(value == wanted)
        if operator == "!=":
            return bool(value != wanted)
        if operator in ("in", "not in"):
            if not isinstance(wanted, list):
                raise value_error(f"{operator} needs a list, not {wanted!r}")
            inside = value in wanted
            return inside if operator == "in" else not inside
        if operator in ("like", "ilike", "=like", "=ilike", "not ilike", "not like"):
            if value in (None, False):
                return operator.startswith("not")
            pattern = str(wanted)
            if not operator.startswith("="):
                pattern = f"%{pattern}%"
            found = _like(pattern, str(value), "ilike" in operator)
            return not found if operator.startswith("not") else found
        if operator == "child_of":
            targets = wanted if isinstance(wanted, list) else [wanted]
            comodel = self._comodel(model, name) if name != "id" else model
            return self._descends(comodel, value, set(targets))
        if operator in ("<", "<=", ">", ">="):
            if value in (None, False):
                return False
            return bool(
                {
                    "<": value < wanted,
                    "<=": value <= wanted,
                    ">": value > wanted,
                    ">=": value >= wanted,
                }[operator]
            )
        raise value_error(f"Invalid operator {operator!r}")

    def _descends(self, model: str, record_id: Any, targets: set[int]) -> bool:
        seen = set()
        while record_id and record_id not in seen:
            if record_id in targets:
                return True
            seen.add(record_id)
            record_id = self.tables[model].get(record_id, {}).get("parent_id")
        return False

    def _ordered(
        self, model: str, records: list[dict[str, Any]], order: Any, context: dict[str, Any]
    ) -> list[dict[str, Any]]:
        spec = order or "id"
        if not isinstance(spec, str):
            raise value_error(f"Invalid order: {order!r}")
        keys = []
        for part in spec.split(","):
            words = part.split()
            if (
                not words
                or len(words) > 2
                or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
            ):
                raise value_error(f'Invalid "order" specified ({spec}).')
            name = words[0]
            f = self.fields_of(model).get(name)
            if name != "id" and (f is None or f.compute is not None or f.type.endswith("2many")):
                raise value_error(f'Invalid "order" specified ({spec}).')
            if f is not None and f.type == "many2one":
                raise self._violation(f"order by a many2one ({model}.{name})")
            keys.append((name, len(words) == 2 and words[1].lower() == "desc"))
        ordered = list(records)
        for name, descending in reversed(keys):
            ordered.sort(key=_sort_key(name), reverse=descending)
        return ordered


def _sort_key(name: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    """NULLs last ascending, first descending (PostgreSQL's default)."""

    def key(record: dict[str, Any]) -> tuple[bool, Any]:
        value = record.get(name)
        return (value is None, value if value is not None else 0)

    return key


def _parse(domain: list[Any]) -> list[Any]:
    """The top-level conditions of a domain in prefix notation (implicitly and-ed), each a
    tree: ("&", a, b), ("|", a, b), ("!", a) or ("leaf", (field, operator, value))."""
    position = 0

    def term() -> Any:
        nonlocal position
        if position >= len(domain):
            raise value_error(f"Invalid domain {domain!r}: an operator lacks its operands")
        first = domain[position]
        position += 1
        if first in ("&", "|"):
            return (first, term(), term())
        if first == "!":
            return ("!", term())
        if isinstance(first, list | tuple) and len(first) == 3 and isinstance(first[0], str):
            return ("leaf", tuple(first))
        raise value_error(f"Invalid domain term {first!r}")

    conditions = []
    while position < len(domain):
        conditions.append(term())
    return conditions


def _leaf_names(term: Any) -> Iterator[str]:
    if term[0] == "leaf":
        yield term[1][0]
    else:
        for child in term[1:]:
            yield from _leaf_names(child)


def _like(pattern: str, value: str, caseless: bool) -> bool:
    """SQL LIKE: % any run, _ any one character, backslash escapes."""
    regex = []
    escaped = False
    for char in pattern:
        if escaped:
            regex.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if caseless else 0)
    return re.fullmatch("".join(regex), value, flags) is not None


def _serialized(exc: OdooRaised) -> dict[str, Any]:
    return {
        "name": exc.name,
        "message": exc.message,
        "arguments": [exc.message],
        "context": {},
        "debug": TRACEBACK + f"{exc.name}: {exc.message}\n",
    }


def _json2_error(exc: OdooRaised) -> web.Response:
    body = _serialized(exc)
    if exc.name.startswith("werkzeug."):
        body["arguments"] = [exc.message, exc.status]
    return web.json_response(body, status=exc.status)


# --- a database to test against ---------------------------------------------------------------

EUR, USD = 1, 2
COMPANY_CURRENCY = EUR
ACME, KIM, JO, ARCHIVED, ZED = 7, 8, 9, 10, 11
BERLIN, HAMBURG, MUNICH = 1, 2, 3
CHAIR, DESK, MAT, OLD_CHAIR, ASSEMBLY = 20, 21, 22, 23, 24
DHL, OWN_FLEET = 1, 2
BULK_ORDERS = 30  # Acme's older orders (each with a delivery and a paid invoice)
CUSHIONS = 12  # "Chair cushion NN" products


def demo(odoo: OdooStandIn) -> OdooStandIn:
    """A small sales database: Acme GmbH (a company, its contact Kim Lee) with many orders and
    invoices (more than a page; one reversed by a credit note), a private customer who paid in
    USD, three warehouses, some products. The company's currency is EUR."""
    add = odoo.add
    add("res.currency", EUR, name="EUR")
    add("res.currency", USD, name="USD")
    add("product.pricelist", 1, name="Public Pricelist", currency_id=EUR)
    add("product.pricelist", 2, name="Gold", currency_id=EUR)
    add(
        "delivery.carrier",
        DHL,
        name="DHL Express",
        tracking_template="https://www.dhl.com/de-en/home/tracking.html?tracking-id={ref}",
    )
    add("delivery.carrier", OWN_FLEET, name="Own fleet")

    add(
        "res.partner",
        ACME,
        name="Acme GmbH",
        is_company=True,
        ref="CUST-ACME",
        email="info@acme.example",
        phone="+49 30 1234 5678",
        vat="DE123456789",
        property_product_pricelist=2,
    )
    add(
        "res.partner",
        KIM,
        name="Kim Lee",
        parent_id=ACME,
        email="Kim Lee <Kim.Lee@Acme.example>",
        mobile="+49 171 2345678",
    )
    add("res.partner", JO, name="Jo Solo", email="jo@example.org", phone="030 9876-5432")
    add(
        "res.partner",
        ARCHIVED,
        name="Archived Ltd",
        is_company=True,
        email="old@acme.example",
        phone="+49 30 1234 5678",
        active=False,
    )
    add(
        "res.partner",
        ZED,
        name="Zed Noise",
        email="zed@example.org",
        phone="+1 555 0100",
        vat="FR12345678901",
        property_product_pricelist=1,
    )

    add("stock.warehouse", BERLIN, name="Berlin", code="WH", sequence=10)
    add("stock.warehouse", HAMBURG, name="Hamburg", code="HH", sequence=20)
    add("stock.warehouse", MUNICH, name="Munich", code="MU", sequence=30)

    def product(record_id: int, code: str | None, name: str, price: float, **extra: Any) -> None:
        add(
            "product.product",
            record_id,
            default_code=code,
            name=name,
            lst_price=price,
            currency_id=EUR,
            sale_ok=extra.pop("sale_ok", True),
            **extra,
        )

    product(CHAIR, "CHAIR-1", "Desk chair", 129.0)
    product(DESK, "DESK-9", "Standing desk", 499.0)
    product(MAT, "MAT-2", "Chair mat", 39.9)
    product(OLD_CHAIR, "CHAIR-0", "Old chair", 59.0, active=False)
    product(ASSEMBLY, None, "Assembly", 49.0)
    product(37, "PART-1", "Internal chair part", 3.0, sale_ok=False)
    for n in range(1, CUSHIONS + 1):
        product(40 + n, f"CUSH-{n:02}", f"Chair cushion {n:02}", 19.0 + n)
    odoo.set_stock(CHAIR, BERLIN, Level(on_hand=12, reserved=3, incoming=5, outgoing=4))
    odoo.set_stock(CHAIR, HAMBURG, Level(on_hand=4))
    odoo.set_stock(DESK, BERLIN, Level(on_hand=2, reserved=2, outgoing=2))

    def order(record_id: int, name: str, when: str, state: str, total: float, **extra: Any) -> None:
        add(
            "sale.order",
            record_id,
            name=name,
            date_order=when,
            state=state,
            amount_total=total,
            currency_id=extra.pop("currency_id", EUR),
            invoice_status=extra.pop("invoice_status", "to invoice"),
            partner_id=extra.pop("partner_id", ACME),
            **extra,
        )

    def picking(record_id: int, order_id: int, state: str, **extra: Any) -> None:
        add(
            "stock.picking",
            record_id,
            name=f"WH/OUT/{record_id:05}",
            state=state,
            origin=odoo.record("sale.order", order_id)["name"],
            picking_type_code="outgoing",
            sale_id=order_id,
            **extra,
        )

    def invoice(record_id: int, order_id: int, total: float, residual: float, **extra: Any) -> None:
        sale = odoo.record("sale.order", order_id)
        add(
            "account.move",
            record_id,
            name=f"INV/{sale['date_order'][:4]}/{record_id:05}",
            move_type="out_invoice",
            state=extra.pop("state", "posted"),
            partner_id=sale["partner_id"],
            invoice_origin=sale["name"],
            invoice_date=sale["date_order"][:10],
            amount_total=total,
            amount_residual=residual,
            payment_state=extra.pop("payment_state", "paid" if residual == 0 else "not_paid"),
            currency_id=sale["currency_id"],
            sale_order_ids=[order_id],
            **extra,
        )

    for n in range(1, BULK_ORDERS + 1):
        month, day = 6 + (n - 1) // 28, (n - 1) % 28 + 1
        when = f"2025-{month:02}-{day:02} 10:00:00"
        order(n, f"S{n:05}", when, "sale", 100.0 + n, locked=True, partner_id=(ACME, KIM)[n % 2])
        picking(1000 + n, n, "done", date_done=when)
        invoice(100 + n, n, 100.0 + n, 0.0, invoice_date_due=when[:10])

    # Newer orders, one of each kind.
    order(41, "S00041", "2026-02-20 09:15:00", "draft", 258.0, partner_id=KIM, invoice_status="no")
    order(42, "S00042", "2026-02-18 16:40:00", "sale", 830.03, partner_id=KIM)
    lines: list[dict[str, Any]] = [
        {"display_type": "line_section", "name": "Office furniture"},
        {"product_id": CHAIR, "name": "Desk chair", "qty": 4, "price": 129.0},
        {"product_id": OLD_CHAIR, "name": "Old chair (last stock)", "qty": 1, "price": 59.0},
        {"product_id": ASSEMBLY, "name": "Assembly", "qty": 2.5, "price": 49.0},
        {"display_type": "line_note", "name": "Deliver to the back door"},
    ]
    for line_id, values in enumerate(lines, start=1):
        qty, price = values.pop("qty", 0), values.pop("price", 0)
        add(
            "sale.order.line",
            500 + line_id,
            order_id=42,
            sequence=10 * line_id,
            product_uom_qty=qty,
            price_unit=price,
            price_subtotal=qty * price,
            **values,
        )
    picking(
        201,
        42,
        "done",
        date_done="2026-02-19 14:30:00",
        carrier_id=DHL,
        carrier_tracking_ref="JD0146000012345",
    )
    picking(202, 42, "assigned", carrier_id=DHL)
    invoice(142, 42, 830.03, 200.0, payment_state="partial", invoice_date_due="2026-02-25")

    order(43, "S00043", "2026-02-10 11:00:00", "sale", 499.0, locked=True)
    picking(
        203,
        43,
        "done",
        date_done="2026-02-11 08:00:00",
        carrier_id=DHL,
        carrier_tracking_ref="JD0146000099999",
    )
    invoice(143, 43, 499.0, 0.0, invoice_date_due="2026-02-24")

    order(44, "S00044", "2026-02-05 10:00:00", "sale", 39.9)
    picking(
        204,
        44,
        "done",
        date_done="2026-02-06 09:00:00",
        carrier_id=OWN_FLEET,
        carrier_tracking_ref="OF-778",
    )
    invoice(144, 44, 39.9, 0.0, payment_state="in_payment", invoice_date_due="2026-03-05")

    order(45, "S00045", "2026-02-03 10:00:00", "sale", 129.0)
    picking(205, 45, "done", date_done="2026-02-04 12:00:00")
    invoice(145, 45, 129.0, 129.0, invoice_date_due="2026-03-20")

    order(46, "S00046", "2026-01-30 10:00:00", "cancel", 75.0, invoice_status="no")
    order(47, "S00047", "2026-02-12 10:00:00", "sale", 59.0, invoice_status="invoiced")
    invoice(147, 47, 59.0, 0.0, payment_state="reversed", invoice_date_due="2026-02-12")
    add(
        "account.move",
        148,
        name="RINV/2026/00148",
        move_type="out_refund",
        state="posted",
        partner_id=ACME,
        invoice_origin="S00047",
        invoice_date="2026-02-13",
        amount_total=59.0,
        amount_residual=0.0,
        payment_state="paid",
        currency_id=EUR,
    )

    order(50, "S00050", "2026-01-15 10:00:00", "sale", 42.0, partner_id=JO, currency_id=USD)
    picking(250, 50, "done", date_done="2026-01-16 10:00:00")
    invoice(150, 50, 42.0, 0.0, invoice_date_due="2026-01-15", amount_total_signed=38.85)
    return odoo
