"""Calls to Twilio's REST API through the official `twilio` library, on its async HTTP client.

`api_base_url` lets an account point at a stand-in (tests, staging): the library builds
`https://api.twilio.com/...` addresses, and `RebasedHttpClient` (the library's
`AsyncTwilioHttpClient`) swaps that origin for the configured one before each request. Each
call runs in an aiohttp session of its own that is closed whatever happens, so a timeout or
a cancelled send leaves nothing open.

Twilio's answers become the outbox's errors: a 4xx with Twilio's error body
(`{"code", "message", "more_info", "status"}`) is permanent, with the code; 429 and 5xx,
network errors and timeouts are transient, with `Retry-After` when Twilio sent one.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from channels.twilio.parse import describe_error
from channels.twilio.settings import TWILIO_API
from core.outbox import PermanentSendError, TransientSendError

# The library logs every request at INFO; ours says what matters.
_quiet = logging.getLogger("channels.twilio.http")
_quiet.setLevel(logging.WARNING)

TIMEOUT_SECONDS = 20.0
MAX_RETRY_AFTER = 3600.0


class RebasedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The library's async HTTP client, sending to `base_url` instead of Twilio's hosts, on
    a session the caller owns. Keeps the last response (its `Retry-After`)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout, logger=_quiet)
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.last_headers: dict[str, str] = {}

    def rebase(self, url: str) -> str:
        if self.base_url == TWILIO_API:
            return url
        parts = urlsplit(url)
        base = urlsplit(self.base_url)
        return urlunsplit(
            (base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment)
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            # As a header: aiohttp deprecates its BasicAuth objects.
            headers["Authorization"] = basic_auth(*auth)
        response = await super().request(
            method,
            self.rebase(url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        self.last_headers = {str(k): str(v) for k, v in (response.headers or {}).items()}
        return response


def basic_auth(login: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


@dataclass
class TwilioApi:
    """A `twilio.rest.Client` for one account, open for the duration of a `connect` block."""

    client: Any
    http: RebasedHttpClient


@asynccontextmanager
async def connect(
    account_sid: str, auth_token: str, base_url: str, seconds: float = TIMEOUT_SECONDS
) -> AsyncIterator[TwilioApi]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session:
        http = RebasedHttpClient(session, base_url, seconds)
        client = Client(account_sid, auth_token, account_sid=account_sid, http_client=http)
        yield TwilioApi(client, http)


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str


async def create_message(
    api: TwilioApi,
    *,
    to: str,
    body: str | None,
    from_: str | None,
    messaging_service_sid: str | None,
    status_callback: str | None,
    media_urls: Sequence[str] = (),
    content_sid: str | None = None,
    content_variables: dict[str, str] | None = None,
) -> SentMessage:
    """POST /Accounts/{sid}/Messages.json; raises the outbox's send errors."""
    arguments: dict[str, Any] = {"to": to}
    if from_:
        arguments["from_"] = from_
    if messaging_service_sid and not from_:
        arguments["messaging_service_sid"] = messaging_service_sid
    if status_callback:
        arguments["status_callback"] = status_callback
    if content_sid:
        arguments["content_sid"] = content_sid
        if content_variables:
            arguments["content_variables"] = json.dumps(content_variables)
    elif body is not None:
        arguments["body"] = body
    if media_urls:
        arguments["media_url"] = list(media_urls)
    try:
        message = await api.client.messages.create_async(**arguments)
    except TwilioRestException as exc:
        raise send_error(exc.status, exc.code, exc.msg, api.http.last_headers) from None
    except (TwilioException, aiohttp.ClientError, ValueError) as exc:
        # ValueError: an answer that is not JSON (a proxy's error page).
        raise TransientSendError(f"Twilio unreachable: {type(exc).__name__}: {exc}") from None
    return SentMessage(str(message.sid), str(message.status or ""))


def send_error(
    status: int, code: int | None, message: str | None, headers: dict[str, str]
) -> PermanentSendError | TransientSendError:
    """Twilio's error answer as the outbox's error: 429 and 5xx retried, other 4xx not."""
    code_text = str(code) if code is not None else None
    text = (message or "").strip()
    if text.startswith("Unable to ") and ": " in text:
        text = text.split(": ", 1)[1]  # the library's prefix ("Unable to create record: ")
    line = describe_error(code_text, text or None) or f"HTTP {status}"
    reason = f"Twilio {code_text}: {line}" if code_text else f"Twilio HTTP {status}: {line}"
    if status == 429 or status >= 500:
        return TransientSendError(reason, retry_after(headers), code_text)
    return PermanentSendError(reason, code_text)


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), capped at an hour."""
    raw = next((value for key, value in headers.items() if key.lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def fetch_account(api: TwilioApi, account_sid: str) -> dict[str, str]:
    """GET /Accounts/{sid}.json: its friendly name and status."""
    account = await api.client.api.v2010.accounts(account_sid).fetch_async()
    return {
        "friendly_name": str(account.friendly_name or ""),
        "status": str(account.status or ""),
    }
