"""Frappe's REST API (ERPNext's), as the ERPNext adapter reads it: the HTTP client.

Every call is a GET with `Authorization: token <api_key>:<api_secret>` (a Frappe user's API
keys; the user's roles decide what it may read):

- `/api/resource/<DocType>?fields=[...]&filters=[...]&or_filters=[...]&order_by=...&
  limit_start=N&limit_page_length=N`: a list (`{"data": [rows]}`). Filters are JSON lists of
  `[field, operator, value]`; a filter on a child table names the child DocType first,
  `["Sales Invoice Item", "sales_order", "=", "SAL-ORD-2026-00012"]`, and Frappe then joins
  the child table, so a parent comes back once per matching child row. Frappe answers 20
  rows unless told otherwise; lists are asked for page by page (`page_size` rows at a time)
  up to what the caller wants.
- `/api/resource/<DocType>/<name>`: one document with its child tables (`{"data": {...}}`).
- `/api/method/<method>`: a whitelisted method's answer (`{"message": ...}`).

Frappe's errors carry `exc_type` (`AuthenticationError` 401, `PermissionError` 403,
`DoesNotExistError` 404, `ValidationError` 417, anything else 500) and its messages in
`_server_messages` (a JSON list of JSON objects) or `exception`; they become `ErpAuthError`,
`ErpNotFound` (a document only), `ErpUnavailable` (5xx, 429) or `ErpError` with those
messages. Network errors and timeouts are left to the base adapter's policy.

No maintained async Frappe client is used: this talks aiohttp directly, one session per
client (one client per adapter), opened on the first call and closed by `close()`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from erp_bridge.base import ErpAuthError, ErpError, ErpNotFound, ErpUnavailable

PAGE_SIZE = 100  # rows per list request
MESSAGE_LENGTH = 300

Row = dict[str, Any]
Filter = list[Any]

_TAGS = re.compile(r"<[^>]+>")


class FrappeClient:
    """One Frappe site over its REST API, with one API user's keys."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.url = url
        self.page_size = max(1, page_size)
        self._authorization = f"token {api_key}:{api_secret}"
        # The base adapter's timeout bounds every call; this only bounds a forgotten one.
        self._session_timeout = max(timeout * 2, 30.0)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._authorization, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self._session_timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: Mapping[str, str] | None, what: str) -> Row:
        """GET `path` (already quoted) and its JSON body; Frappe's errors as ErpErrors."""
        url = URL(self.url + path, encoded=True)
        async with self._http().get(url, params=params or None) as response:
            status = response.status
            text = await response.text(errors="replace")
        body = _json_object(text)
        if status == 200:
            if body is None:
                raise ErpUnavailable(
                    f"ERPNext answered {what} with something that is not Frappe's JSON: "
                    "is the url the site's address?"
                )
            return body
        raise _error(status, body, text, what)

    async def doc(self, doctype: str, name: str) -> Row | None:
        """One document with its child tables, or None if there is no such document."""
        path = f"/api/resource/{_quote(doctype)}/{_quote(name)}"
        try:
            body = await self.get(path, None, f"{doctype} {name}")
        except ErpNotFound:
            return None
        data = body.get("data")
        if not isinstance(data, dict):
            raise ErpUnavailable(f"ERPNext's answer for {doctype} {name} holds no document")
        return data

    async def rows(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[Filter] = (),
        or_filters: Sequence[Filter] = (),
        order_by: str | None = None,
        limit: int,
    ) -> list[Row]:
        """Up to `limit` rows of a list, asked for `page_size` at a time."""
        rows: list[Row] = []
        base = {"fields": _dumps(list(fields))}
        if filters:
            base["filters"] = _dumps(list(filters))
        if or_filters:
            base["or_filters"] = _dumps(list(or_filters))
        if order_by:
            base["order_by"] = order_by
        path = f"/api/resource/{_quote(doctype)}"
        while len(rows) < limit:
            page = min(self.page_size, limit - len(rows))
            params = {**base, "limit_start": str(len(rows)), "limit_page_length": str(page)}
            try:
                body = await self.get(path, params, f"the {doctype} list")
            except ErpNotFound as exc:  # the DocType itself is missing
                raise ErpError(f"{exc} (is ERPNext installed on this site?)") from None
            data = body.get("data")
            if not isinstance(data, list):
                raise ErpUnavailable(f"ERPNext's answer for the {doctype} list holds no list")
            rows.extend(row for row in data if isinstance(row, dict))
            if len(data) < page:
                break
        return rows

    async def method(self, method: str, what: str) -> Any:
        """A whitelisted method's `message`."""
        body = await self.get(f"/api/method/{_quote(method)}", None, what)
        return body.get("message")


def _quote(segment: str) -> str:
    return quote(segment, safe="")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_object(text: str) -> Row | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# --- Frappe's errors ----------------------------------------------------------------------------


def frappe_message(body: Mapping[str, Any] | None) -> str:
    """The words of a Frappe error body: its `_server_messages` (a JSON list of JSON
    objects with a `message`, often HTML), else its `exception` line, else
    `_error_message` (a permission refused), else `message`."""
    if not body:
        return ""
    messages: list[str] = []
    raw = body.get("_server_messages")
    if isinstance(raw, str):
        try:
            entries = json.loads(raw)
        except ValueError:
            entries = [raw]
        for entry in entries if isinstance(entries, list) else [entries]:
            item: Any = entry
            if isinstance(entry, str):
                try:
                    item = json.loads(entry)
                except ValueError:
                    item = entry
            text = item.get("message") if isinstance(item, dict) else item
            if isinstance(text, str) and _plain(text):
                messages.append(_plain(text))
    if not messages and isinstance(body.get("exception"), str):
        line = body["exception"].strip().splitlines()[-1] if body["exception"].strip() else ""
        # "frappe.exceptions.ValidationError: Item Code is mandatory" -> the words
        messages.append(_plain(line.split(": ", 1)[1] if ": " in line else line))
    if not messages and isinstance(body.get("_error_message"), str):
        messages.append(_plain(body["_error_message"]))
    if not messages and isinstance(body.get("message"), str):
        messages.append(_plain(body["message"]))
    return "; ".join(message for message in dict.fromkeys(messages) if message)[:MESSAGE_LENGTH]


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAGS.sub("", text)).split())


def _error(status: int, body: Row | None, text: str, what: str) -> ErpError:
    """Frappe's error answer as the bridge's error."""
    exc_type = str(body.get("exc_type") or "") if body else ""
    words = frappe_message(body)
    detail = f"{exc_type}: {words}" if exc_type and words else exc_type or words
    if not detail and text.strip() and body is None:
        detail = _plain(text)[:120]  # a proxy's page
    suffix = f" ({detail})" if detail else ""
    if status == 401 or exc_type == "AuthenticationError":
        return ErpAuthError(f"ERPNext refused the API key and secret{suffix}")
    if status == 403 or exc_type == "PermissionError":
        return ErpAuthError(f"ERPNext's API user may not read {what}{suffix}")
    if status == 404 and exc_type == "DoesNotExistError":
        return ErpNotFound(f"ERPNext has no {what}{suffix}")
    if status == 404:
        return ErpError(f"ERPNext: no such address for {what} (is the url the site's?){suffix}")
    if status == 429:
        return ErpUnavailable(f"ERPNext is limiting our requests{suffix}")
    if status >= 500:
        return ErpUnavailable(f"ERPNext failed to answer {what}: HTTP {status}{suffix}")
    return ErpError(f"ERPNext refused {what}: HTTP {status}{suffix}")
