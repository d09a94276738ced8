"""1C:Enterprise's standard OData interface (`<publication>/odata/standard.odata`, OData v3,
JSON), as the 1C adapter reads it: the HTTP client and the OData text it writes.

Every request is `GET <url>/odata/standard.odata/<Object>?$format=json&...` with HTTP basic
auth (UTF-8 credentials: 1C users are often named in Cyrillic). Object and field names are
the configuration's own and Russian (`Catalog_Контрагенты`, `Document_ЗаказКлиента`,
`ИНН`): they are percent-encoded as UTF-8, spaces as %20 (never `+`). `$filter` literals are
written here: strings quoted with `'` doubled, references as `guid'…'`.

What the client asks: a list (`$filter`, `$select`, `$orderby`, `$top`, `$skip`), pages of a
list up to a number of kept records (`collect`), records by reference in batches of
`LOOKUP_BATCH` (`Ref_Key eq guid'…' or …`), one record by its key (`Entity(guid'…')`), and an
accumulation register's `Balance` virtual table.

Errors: 401/403 is `ErpAuthError`; an OData error body (`{"odata.error": {"code", "message":
{"lang", "value"}}}`) says what went wrong: code 9 (no such record) is `ErpNotFound`, code 8
(no such object) an `ErpError` naming the setting to change, code 10 (no such field) one naming
the field settings, code 11 (no such virtual table) one naming the register's setting; 5xx and
answers that are not JSON are `ErpUnavailable`. The caller names the settings (`setting`,
`fields_setting`) with each request. Network errors and timeouts escape to the base adapter,
which owns the timeout, cache and breaker.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from erp_bridge.base import ErpAuthError, ErpError, ErpNotFound, ErpUnavailable

ODATA_PATH = "odata/standard.odata"
EMPTY_REF = "00000000-0000-0000-0000-000000000000"
LOOKUP_BATCH = 20  # references per "Ref_Key eq guid'…' or …" filter: 1C's URLs stay short
PAGE_SIZE = 100  # records per request, unless said

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

Record = dict[str, Any]


# --- OData text -----------------------------------------------------------------------------


def literal(text: str) -> str:
    """An OData string literal ('…' with quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def guid(ref: str) -> str:
    return f"guid'{ref.lower()}'"


def is_ref(value: object) -> bool:
    """A 1C reference (a GUID) that is not the empty reference."""
    return isinstance(value, str) and bool(_GUID.match(value)) and value != EMPTY_REF


def any_ref(field: str, refs: Iterable[str]) -> str:
    return "(" + " or ".join(f"{field} eq {guid(ref)}" for ref in refs) + ")"


def batches(items: Sequence[str], size: int = LOOKUP_BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def live(record: Mapping[str, Any]) -> bool:
    """Neither marked for deletion (`DeletionMark`) nor a catalogue group (`IsFolder`)."""
    return not record.get("DeletionMark") and not record.get("IsFolder")


def _encode_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(key, safe='$')}={quote(value, safe=chr(39) + '(),:/')}"
        for key, value in params.items()
    )


def _records(answer: Any, entity: str) -> list[Record]:
    rows = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        raise ErpUnavailable(f"1C's answer for {entity} has no list of records")
    return [row for row in rows if isinstance(row, dict)]


# --- the client ---------------------------------------------------------------------------------


class ODataClient:
    """One infobase's standard OData interface, signed in as one 1C user."""

    def __init__(
        self,
        publication: str,
        username: str,
        password: str,
        *,
        timeout: float,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.root = f"{publication}/{ODATA_PATH}"
        self.username = username
        self.page_size = page_size
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        credentials = f"{username}:{password}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Authorization": self._authorization, "Accept": "application/json"},
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    async def get(
        self,
        resource: str,
        params: Mapping[str, str],
        setting: str,
        fields_setting: str | None = None,
    ) -> Any:
        """GET one resource of the interface; its JSON, or the ERP error its answer means.
        `setting` (and `fields_setting`) name what an admin changes when 1C lacks the object
        (or a field)."""
        path = quote(resource, safe="/()=',")
        query = _encode_query({**params, "$format": "json"})
        url = URL(f"{self.root}/{path}?{query}", encoded=True)
        async with self._session().get(url, allow_redirects=False) as response:
            status = response.status
            body = await response.read()
        return self._answer(status, body, resource, setting, fields_setting)

    def _answer(
        self,
        status: int,
        body: bytes,
        resource: str,
        setting: str,
        fields_setting: str | None,
    ) -> Any:
        entity = resource.split("/", 1)[0].split("(", 1)[0]
        if status in (401, 403):
            raise ErpAuthError(
                f"1C refused the user {self.username!r} (HTTP {status}): check "
                "`username` and `password`, and that the user may use the OData interface"
            )
        try:
            parsed: Any = json.loads(body, parse_float=Decimal) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        error = parsed.get("odata.error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            raise _odata_error(status, error, entity, resource, setting, fields_setting)
        if status == 404:
            raise ErpError(
                f"no 1C OData interface answers at {self.root}: check `url` (the publication) "
                "and that the standard OData interface is published"
            )
        if status >= 500:
            raise ErpUnavailable(f"1C answered HTTP {status}")
        if status >= 300:
            raise ErpError(f"1C answered HTTP {status} to {entity}")
        if not isinstance(parsed, dict):
            raise ErpUnavailable(
                f"1C's answer for {entity} is not JSON: is {self.root} the OData interface?"
            )
        return parsed

    # --- queries ----------------------------------------------------------------------------------

    async def query(
        self,
        entity: str,
        setting: str,
        fields_setting: str | None = None,
        *,
        where: str | None = None,
        select: Sequence[str | None] = (),
        orderby: str | None = None,
        top: int | None = None,
        skip: int = 0,
    ) -> list[Record]:
        """One request for records of an entity set."""
        params: dict[str, str] = {}
        if where:
            params["$filter"] = where
        chosen = [name for name in dict.fromkeys(select) if name]
        if chosen:
            params["$select"] = ",".join(chosen)
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = str(top)
        if skip:
            params["$skip"] = str(skip)
        answer = await self.get(entity, params, setting, fields_setting)
        return _records(answer, entity)

    async def collect(
        self,
        entity: str,
        setting: str,
        fields_setting: str | None = None,
        *,
        where: str,
        orderby: str,
        want: int,
        keep: Callable[[Record], bool] = live,
        select: Sequence[str | None] = (),
        page: int | None = None,
        max_pages: int | None = None,
    ) -> list[Record]:
        """Up to `want` records that `keep` keeps, page after page ($top/$skip) of `page`
        records (as many as wanted, up to `page_size`, unless said)."""
        kept: list[Record] = []
        page_size = page or min(self.page_size, max(want, 1))
        skip = 0
        pages = 0
        while len(kept) < want:
            rows = await self.query(
                entity,
                setting,
                fields_setting,
                where=where,
                select=select,
                orderby=orderby,
                top=page_size,
                skip=skip,
            )
            kept.extend(row for row in rows if keep(row))
            pages += 1
            skip += len(rows)
            if len(rows) < page_size or (max_pages is not None and pages >= max_pages):
                break
        return kept[:want]

    async def by_keys(
        self,
        entity: str,
        refs: Iterable[object],
        setting: str,
        fields_setting: str | None = None,
        select: Sequence[str | None] = (),
    ) -> dict[str, Record]:
        """Records by reference (deleted ones too: an old line still has a product), in
        batches of `LOOKUP_BATCH` references a request."""
        wanted = sorted({ref.lower() for ref in refs if isinstance(ref, str) and is_ref(ref)})
        found: dict[str, Record] = {}
        for batch in batches(wanted):
            rows = await self.query(
                entity,
                setting,
                fields_setting,
                where=any_ref("Ref_Key", batch),
                select=["Ref_Key", *select] if select else (),
                top=len(batch),
            )
            for row in rows:
                if isinstance(row.get("Ref_Key"), str):
                    found[row["Ref_Key"].lower()] = row
        return found

    async def one(self, entity: str, ref: str, setting: str) -> Record | None:
        """A record by its key (`Entity(guid'…')`); None when 1C has none (code 9)."""
        try:
            answer = await self.get(f"{entity}({guid(ref)})", {}, setting)
        except ErpNotFound:
            return None
        answer.pop("odata.metadata", None)
        return dict(answer)

    async def balance(
        self,
        register: str,
        condition: str,
        dimensions: Sequence[str],
        setting: str,
        fields_setting: str,
    ) -> list[Record]:
        """Rows of a register's `Balance` virtual table (current balances) for `condition`,
        summed over `dimensions` (1C's names without `_Key`)."""
        resource = (
            f"{register}/Balance(Condition={literal(condition)},"
            f"Dimensions={literal(','.join(dimensions))})"
        )
        answer = await self.get(resource, {}, setting, fields_setting)
        return _records(answer, register)


def _odata_error(
    status: int,
    error: Mapping[str, Any],
    entity: str,
    resource: str,
    setting: str,
    fields_setting: str | None,
) -> ErpError:
    """An OData error body as the bridge's error, naming the setting to change."""
    code = str(error.get("code", "")).strip()
    message = error.get("message")
    text = message.get("value") if isinstance(message, dict) else message
    said = str(text or "").strip()[:300] or f"HTTP {status}"
    if code == "9":
        return ErpNotFound(f"1C has no such record in {entity}: {said}")
    if code == "8":
        return ErpError(
            f"the configuration has no {entity} (or it is not in the standard OData "
            f"interface's content): set `{setting}` ({said})"
        )
    if code == "10":
        where = f"`{fields_setting}`" if fields_setting else f"the fields of `{setting}`"
        return ErpError(f"1C does not know a field of {entity} ({said}): check {where}")
    if code == "11" and "/" in resource:
        return ErpError(
            f"{entity} has no {resource.split('/', 1)[1].split('(', 1)[0]} table "
            f"({said}): `{setting}` must name an accumulation register of balances"
        )
    if status >= 500:
        return ErpUnavailable(f"1C answered HTTP {status} (code {code or '?'}): {said}")
    return ErpError(f"1C refused the query on {entity} (code {code or '?'}): {said}")
