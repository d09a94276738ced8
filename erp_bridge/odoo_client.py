"""Odoo's two external APIs, over one aiohttp session: JSON-2 (Odoo 19 and later) and the
external JSON-RPC API (Odoo 16 to 18; deprecated in 19, to be removed in 22).

- **JSON-2**: `POST /json/2/<model>/<method>` with `Authorization: bearer <API key>` and
  `X-Odoo-Database`; the body is the method's named parameters plus `ids` and `context`; the
  answer is the method's value (200), or an error object (`{"name", "message", "arguments",
  "context", "debug"}`) with a 4xx/5xx status: 401 for a refused key, 403 for access
  (`odoo.exceptions.AccessDenied`/`AccessError`), 404 for an unknown model or method, 422 for
  a user error or wrong parameters. The version is `GET /web/version`; the signed-in user
  comes from `res.users/context_get` (its `uid`).
- **JSON-RPC**: `POST /jsonrpc`, `{"jsonrpc": "2.0", "method": "call", "params": {"service",
  "method", "args"}, "id"}`; `common.authenticate(db, login, key, {})` gives the uid (or
  false), then `object.execute_kw(db, uid, key, model, method, args, kwargs)`. Errors come
  with HTTP 200 as `{"error": {"code", "message": "Odoo Server Error", "data": {"name",
  "message", "arguments", "debug", "context"}}}` (code 200 up to Odoo 18, 0 from 19).

Above the wire: `search_read_all` pages through `search_read` (`limit`/`offset`, an `order`
ending with `id`), `model_fields` asks `fields_get` once per model which of the fields that
depend on the version or on installed modules the database has (and whether the model exists
at all), `gather` runs calls side by side.

Odoo's answers become the bridge's errors: a refused key or missing rights `ErpAuthError`, a
missing record (`odoo.exceptions.MissingError`) `ErpNotFound`, any other error `OdooFault` (an
`ErpError` whose message is Odoo's own), an answer that is not Odoo's (a proxy's error page,
no JSON) `ErpUnavailable`. Network errors and timeouts escape to the base adapter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import aiohttp

from erp_bridge.base import ErpAuthError, ErpError, ErpNotFound, ErpUnavailable

T = TypeVar("T")
Protocol = Literal["json2", "jsonrpc"]
Domain = list[Any]
Record = dict[str, Any]

USER_AGENT = "omnicrm-erp-bridge/1"
PAGE_SIZE = 80  # records per search_read (Odoo's web client pages by 80)
MAX_RECORDS = 500  # at most this many of a list (invoices, lines, pickings, warehouses)
MAX_ERROR_CHARS = 300

# Exceptions Odoo raises for credentials and rights (by fully qualified name).
_AUTH_ERRORS = {
    "odoo.exceptions.AccessDenied",
    "odoo.exceptions.AccessError",
    "werkzeug.exceptions.Unauthorized",
    "werkzeug.exceptions.Forbidden",
    "odoo.http.SessionExpiredException",
}
_MISSING_ERRORS = {"odoo.exceptions.MissingError"}


class OdooFault(ErpError):
    """An error Odoo answered (its exception's name and message)."""

    def __init__(self, message: str, *, name: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.status = status

    @property
    def missing_model(self) -> bool:
        """Odoo says the model does not exist (a module that is not installed)."""
        text = str(self).lower()
        return "does not exist" in text or "doesn't exist" in text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def fault(
    name: str, message: str, *, status: int | None = None, where: str = ""
) -> ErpAuthError | ErpNotFound | OdooFault:
    """Odoo's error (its exception's name and message) as the bridge's error."""
    short_name = name.rsplit(".", 1)[-1] if name else ""
    text = _short(message) or short_name or "an error without a message"
    place = f" ({where})" if where else ""
    if name in _AUTH_ERRORS or status in (401, 403):
        return ErpAuthError(f"Odoo refused access{place}: {text}")
    if name in _MISSING_ERRORS:
        return ErpNotFound(f"Odoo: {text}{place}")
    label = f"{short_name}: " if short_name and short_name not in text else ""
    return OdooFault(f"Odoo answered {label}{text}{place}", name=name, status=status)


# --- values as Odoo writes them -----------------------------------------------------------------


def text(value: Any) -> str | None:
    """A char/text/selection value: Odoo writes `false` for an empty one."""
    if value is False or value is None:
        return None
    result = str(value).strip()
    return result or None


def many2one(value: Any) -> tuple[int, str] | None:
    """A many2one value: `[id, "display name"]`, or `false`."""
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], int):
        return value[0], str(value[1])
    return None


def many2one_name(value: Any) -> str | None:
    pair = many2one(value)
    return text(pair[1]) if pair is not None else None


def ids(value: Any) -> list[int]:
    """A one2many/many2many value: a list of ids (`false` or `[]` when empty)."""
    if isinstance(value, list):
        return [item for item in value if isinstance(item, int)]
    return []


def number(value: Any) -> Decimal:
    """A float/monetary/integer value (`false` reads as 0, as in Odoo)."""
    if value is False or value is None:
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ErpUnavailable(f"Odoo sent {value!r} where a number belongs") from None


def odoo_datetime(value: Any) -> datetime | None:
    """A datetime value: "YYYY-MM-DD HH:MM:SS" in UTC, or `false`."""
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ErpUnavailable(f"Odoo sent {raw!r} where a date and time belongs") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def odoo_date(value: Any) -> date | None:
    """A date value: "YYYY-MM-DD", or `false`."""
    raw = text(value)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise ErpUnavailable(f"Odoo sent {raw!r} where a date belongs") from None


def any_of(*leaves: Sequence[Any]) -> Domain:
    """Odoo's prefix notation for leaf OR leaf OR ... (one leaf: just it)."""
    if not leaves:
        raise ValueError("no leaves")
    return ["|"] * (len(leaves) - 1) + [list(leaf) for leaf in leaves]


@dataclass(frozen=True)
class ModelFields:
    """What `fields_get` said of a model: whether it exists, and its optional fields."""

    exists: bool
    optional: frozenset[str]


# --- the connection -----------------------------------------------------------------------------


class OdooConnection:
    """One Odoo database over one protocol, on a lazily created aiohttp session."""

    def __init__(
        self,
        *,
        url: str,
        database: str,
        protocol: Protocol,
        login: str | None,
        api_key: str,
        connect_timeout: float = 10.0,
        page_size: int = PAGE_SIZE,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.protocol: Protocol = protocol
        self.login = login or ""
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        self.page_size = page_size
        self.max_records = max_records
        self._fields: dict[str, ModelFields] = {}
        self._session: aiohttp.ClientSession | None = None
        self._uid: int | None = None
        self._uid_lock = asyncio.Lock()
        self._ids = itertools.count(1)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._uid = None
        self._fields.clear()

    # --- what the adapter calls ---------------------------------------------------------------

    async def call(
        self,
        model: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        positional: Sequence[str] = (),
        record_ids: Sequence[int] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """`model.method(**params)` on `record_ids` (None: an @api.model method). JSON-RPC
        passes `record_ids` and the parameters named in `positional` as positional
        arguments, in that order (as Odoo's own clients do), the rest by name."""
        named = dict(params or {})
        if self.protocol == "json2":
            body: dict[str, Any] = dict(named)
            if record_ids is not None:
                body["ids"] = list(record_ids)
            if context:
                body["context"] = dict(context)
            return await self._json2(model, method, body)
        args: list[Any] = [list(record_ids)] if record_ids is not None else []
        args.extend(named.pop(name) for name in positional)
        if context:
            named["context"] = dict(context)
        uid = await self.uid()
        try:
            return await self._jsonrpc(
                "object",
                "execute_kw",
                [self.database, uid, self.api_key, model, method, args, named],
                where=f"{model}.{method}",
            )
        except ErpAuthError:
            self._uid = None  # a key changed since: sign in again next time
            raise

    async def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Record]:
        params: dict[str, Any] = {"domain": domain, "fields": list(fields)}
        if offset:
            params["offset"] = offset
        if limit is not None:
            params["limit"] = limit
        if order:
            params["order"] = order
        result = await self.call(
            model, "search_read", params, positional=("domain",), context=context
        )
        if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
            raise ErpUnavailable(f"Odoo's {model}.search_read answered something else than records")
        return result

    async def search_read_all(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str],
        *,
        order: str,
        limit: int | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Record]:
        """All records (up to `limit`, else `max_records`), a page at a time. `order` must end
        with a unique key (id) so that pages neither skip nor repeat records."""
        cap = min(limit, self.max_records) if limit is not None else self.max_records
        records: list[Record] = []
        while len(records) < cap:
            want = min(self.page_size, cap - len(records))
            page = await self.search_read(
                model,
                domain,
                fields,
                offset=len(records),
                limit=want,
                order=order,
                context=context,
            )
            records.extend(page)
            if len(page) < want:
                break
        return records

    async def model_fields(self, model: str, optional: Sequence[str]) -> ModelFields:
        """Whether the database has `model` (its module is installed), and which of the
        `optional` fields (by version or module) it has: `fields_get`, once per model."""
        known = self._fields.get(model)
        if known is not None:
            return known
        try:
            answer = await self.call(
                model,
                "fields_get",
                {"allfields": list(optional) or ["id"], "attributes": ["type"]},
            )
        except OdooFault as exc:
            if not exc.missing_model:
                raise
            known = ModelFields(exists=False, optional=frozenset())
        else:
            present = answer.keys() if isinstance(answer, dict) else ()
            known = ModelFields(
                exists=True, optional=frozenset(f for f in optional if f in present)
            )
        self._fields[model] = known
        return known

    async def version(self) -> str:
        """The server's version, e.g. "18.0"."""
        if self.protocol == "json2":
            async with self.session.get(f"{self.url}/web/version") as response:
                status, body = response.status, await _json_body(response)
            if status != 200 or not isinstance(body, dict):
                raise ErpUnavailable(f"Odoo's /web/version answered HTTP {status}")
            return str(body.get("version") or "?")
        info = await self._jsonrpc("common", "version", [], where="common.version")
        if not isinstance(info, dict):
            raise ErpUnavailable("Odoo's common.version answered something else than a version")
        return str(info.get("server_version") or info.get("server_serie") or "?")

    async def uid(self) -> int:
        """The signed-in user's id: JSON-RPC authenticates the login with the key (once);
        JSON-2 asks `res.users/context_get` (the user is the key's)."""
        if self._uid is not None:
            return self._uid
        async with self._uid_lock:  # one sign-in for the calls that wait for it
            if self._uid is None:
                self._uid = await self._sign_in()
            return self._uid

    async def _sign_in(self) -> int:
        if self.protocol == "json2":
            context = await self._json2("res.users", "context_get", {})
            uid = context.get("uid") if isinstance(context, dict) else None
        else:
            uid = await self._jsonrpc(
                "common",
                "authenticate",
                [self.database, self.login, self.api_key, {}],
                where="common.authenticate",
            )
        if uid is False or uid is None:
            raise ErpAuthError(
                f"Odoo refused the login {self.login!r} with this API key "
                f"(database {self.database})"
            )
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise ErpUnavailable(f"Odoo answered {uid!r} where a user id belongs")
        return uid

    # --- the wire ------------------------------------------------------------------------------

    async def _json2(self, model: str, method: str, body: dict[str, Any]) -> Any:
        headers = {
            "Authorization": f"bearer {self.api_key}",
            "X-Odoo-Database": self.database,
            "Content-Type": "application/json; charset=utf-8",
        }
        url = f"{self.url}/json/2/{model}/{method}"
        async with self.session.post(url, data=json.dumps(body), headers=headers) as response:
            status, answer = response.status, await _json_body(response)
        if status == 200:
            return answer
        where = f"{model}.{method}"
        name = str(answer.get("name") or "") if isinstance(answer, dict) else ""
        if status == 404 and name == "werkzeug.exceptions.NotFound" and model not in str(answer):
            # Not "the model ... does not exist": no route, so no such database here.
            raise ErpUnavailable(
                f"Odoo at {self.url} answered 404 to {where}: is the database "
                f"{self.database!r} right?"
            )
        if isinstance(answer, dict) and ("name" in answer or "message" in answer):
            raise fault(
                str(answer.get("name") or ""),
                str(answer.get("message") or ""),
                status=status,
                where=where,
            )
        if status in (401, 403):
            raise ErpAuthError(f"Odoo refused access ({where}): HTTP {status}")
        if status == 404:
            raise ErpUnavailable(
                f"no JSON-2 API at {self.url} (HTTP 404): it needs Odoo 19 or later; "
                "use the jsonrpc protocol for Odoo 16 to 18"
            )
        raise ErpUnavailable(f"Odoo answered HTTP {status} to {where}")

    async def _jsonrpc(self, service: str, method: str, args: list[Any], *, where: str) -> Any:
        request_id = next(self._ids)
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": request_id,
        }
        async with self.session.post(f"{self.url}/jsonrpc", json=payload) as response:
            status, answer = response.status, await _json_body(response)
        if status in (401, 403):
            raise ErpAuthError(f"Odoo refused access ({where}): HTTP {status}")
        if status == 404:
            raise ErpUnavailable(
                f"no JSON-RPC API at {self.url}/jsonrpc (HTTP 404): Odoo 22 and later have "
                "only JSON-2; use the json2 protocol"
            )
        if status != 200 or not isinstance(answer, dict):
            raise ErpUnavailable(f"Odoo answered HTTP {status} to {where}, not JSON-RPC")
        error = answer.get("error")
        if error is not None:
            data = error.get("data") if isinstance(error, dict) else None
            data = data if isinstance(data, dict) else {}
            top = error.get("message") if isinstance(error, dict) else None
            raise fault(
                str(data.get("name") or ""),
                str(data.get("message") or top or ""),
                where=where,
            )
        # Odoo leaves "result" out when the method returned None.
        return answer.get("result")


async def gather_all(*awaitables: Awaitable[Any]) -> list[Any]:
    """All of them at once (see `gather`)."""
    return await gather(awaitables, len(awaitables))


async def gather(awaitables: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Run them at most `limit` at a time; the first failure cancels the others and is
    raised as itself (not an ExceptionGroup), so the base adapter maps it as usual."""
    gate = asyncio.Semaphore(max(limit, 1))

    async def gated(awaitable: Awaitable[T]) -> T:
        async with gate:
            return await awaitable

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(awaitable)) for awaitable in awaitables]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _json_body(response: aiohttp.ClientResponse) -> Any:
    raw = await response.read()
    try:
        return json.loads(raw)
    except ValueError:
        return None
