"""A stand-in for Twilio in the tests: its REST wire format, and the webhooks it would send.

`TwilioStandIn` is an aiohttp server answering the calls omnicrm makes, as Twilio's API does
(2010-04-01 API, JSON):

- `POST /2010-04-01/Accounts/{sid}/Messages.json` (form-encoded, HTTP basic auth with the
  account SID and auth token): 201 with the Message resource; 400 with Twilio's error body
  (`{"code", "message", "more_info", "status"}`) for a missing or invalid `To` (21604,
  21211), a message without body, media or content (21602); 401 (20003) for bad credentials.
  A test scripts the next answers (`script(...)`): an error with Twilio's code, 429 with
  `Retry-After`, a 5xx, or a stall longer than the client waits.
- `GET /2010-04-01/Accounts/{sid}.json`: the Account resource.
- `GET .../Messages/{MM}/Media/{ME}` (basic auth): redirects to the file on its "CDN" path,
  as Twilio does; scripted failures first if asked.

`Signer` signs webhooks as Twilio does, with the official library's `RequestValidator`:
`X-Twilio-Signature` over the URL and the sorted form parameters, or (JSON bodies) over the
URL carrying `bodySHA256`. `inbound(...)` and `status(...)` build the parameters Twilio posts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import BasicAuth, web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from core.models import utcnow

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
API = "/2010-04-01"


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Answer:
    """A scripted answer to the next Messages create call."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0


def error(code: int, message: str, status: int = 400, **headers: str) -> Answer:
    """Twilio's error answer."""
    return Answer(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        dict(headers),
    )


@dataclass
class Media:
    content: bytes
    content_type: str
    failures: int = 0  # answer 500 this many times first
    fetches: int = 0
    auth_seen: list[str | None] = field(default_factory=list)


class TwilioStandIn:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, str]] = []  # what each accepted create call sent
        self.calls: list[dict[str, Any]] = []  # every create call, answered or not
        self.answers: list[Answer] = []
        self.media: dict[str, Media] = {}
        self.friendly_name = "omnicrm test account"
        self.server: TestServer | None = None
        # more routes on the same server (the Voice stand-in's), added before `start()`
        self.extra_routes: list[Callable[[web.Application], None]] = []

    # --- scripting ------------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """The next create calls get these answers, in order; then 201 again."""
        self.answers.extend(answers)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def add_media(self, content: bytes, content_type: str, failures: int = 0) -> str:
        """A media file of an inbound message; its MediaUrl."""
        path = f"{API}/Accounts/{self.account_sid}/Messages/{sid('MM')}/Media/{sid('ME')}"
        self.media[path] = Media(content, content_type, failures)
        return f"{self.url}{path}"

    # --- the server -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"{API}/Accounts/{{sid}}/Messages.json", self._create)
        app.router.add_get(f"{API}/Accounts/{{sid}}.json", self._account)
        app.router.add_get(f"{API}/Accounts/{{sid}}/Messages/{{mm}}/Media/{{me}}", self._media)
        app.router.add_get("/cdn/{key}", self._cdn)
        for add_routes in self.extra_routes:
            add_routes(app)
        return app

    async def start(self) -> str:
        self.server = TestServer(self.app())
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.account_sid, self.auth_token)

    def _auth_error(self) -> web.Response:
        body = error(20003, "Authenticate", 401).body
        return web.json_response(body, status=401)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sent = {key: str(value) for key, value in form.items()}
        media = [str(value) for value in form.getall("MediaUrl", [])]
        self.calls.append({"form": sent, "media": media, "auth": self._authorized(request)})
        if not self._authorized(request) or request.match_info["sid"] != self.account_sid:
            return self._auth_error()
        if self.answers:
            answer = self.answers.pop(0)
            if answer.stall_seconds:
                await asyncio.sleep(answer.stall_seconds)
            if answer.status != 201:
                return web.json_response(answer.body, status=answer.status, headers=answer.headers)
        to = sent.get("To", "")
        if not to:
            return _answer(error(21604, "A 'To' phone number is required."))
        number = to.removeprefix("whatsapp:")
        if not (number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16):
            return _answer(error(21211, f"Invalid 'To' Phone Number: {to}"))
        if not (sent.get("Body") or media or sent.get("ContentSid")):
            return _answer(error(21602, "Message body is required."))
        if not (sent.get("From") or sent.get("MessagingServiceSid")):
            return _answer(error(21603, "A 'From' phone number is required."))
        message_sid = sid("MM" if media else "SM")
        self.messages.append({**sent, "Sid": message_sid, "MediaUrl": json.dumps(media)})
        now = format_datetime(utcnow(), usegmt=True)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": sent.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sent.get("From"),
            "messaging_service_sid": sent.get("MessagingServiceSid"),
            "num_media": str(len(media)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "accepted" if sent.get("MessagingServiceSid") else "queued",
            "subresource_uris": {
                "media": f"{API}/Accounts/{self.account_sid}/Messages/{message_sid}/Media.json"
            },
            "to": to,
            "uri": f"{API}/Accounts/{self.account_sid}/Messages/{message_sid}.json",
        }
        return web.json_response(resource, status=201)

    async def _account(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request) or request.match_info["sid"] != self.account_sid:
            return self._auth_error()
        return web.json_response(
            {
                "sid": self.account_sid,
                "friendly_name": self.friendly_name,
                "status": "active",
                "type": "Full",
                "auth_token": self.auth_token,
                "owner_account_sid": self.account_sid,
                "date_created": format_datetime(utcnow(), usegmt=True),
                "date_updated": format_datetime(utcnow(), usegmt=True),
                "uri": f"{API}/Accounts/{self.account_sid}.json",
                "subresource_uris": {},
            }
        )

    async def _media(self, request: web.Request) -> web.StreamResponse:
        found = self.media.get(request.path)
        if found is None:
            return _answer(error(20404, "The requested resource was not found", 404))
        found.fetches += 1
        found.auth_seen.append(request.headers.get("Authorization"))
        if not self._authorized(request):
            return self._auth_error()
        if found.failures > 0:
            found.failures -= 1
            return web.Response(status=503, text="Service Unavailable")
        key = hashlib.sha256(request.path.encode()).hexdigest()
        raise web.HTTPTemporaryRedirect(f"/cdn/{key}")

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        for path, media in self.media.items():
            if hashlib.sha256(path.encode()).hexdigest() == request.match_info["key"]:
                return web.Response(body=media.content, content_type=media.content_type)
        raise web.HTTPNotFound()


def _answer(answer: Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


# --- webhooks, as Twilio sends them ---------------------------------------------------------


class Signer:
    """Signs requests with an account's auth token, as Twilio does."""

    def __init__(self, auth_token: str = AUTH_TOKEN) -> None:
        self.validator = RequestValidator(auth_token)

    def form(self, url: str, params: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
        """A form-encoded body and its headers, signed for `url`."""
        signature = self.validator.compute_signature(url, dict(params))
        return urlencode(dict(params)).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(8),
        }

    def json(self, url: str, data: Any) -> tuple[str, bytes, dict[str, str]]:
        """A JSON body: the URL gains its bodySHA256, the signature covers that URL."""
        body = json.dumps(data)
        separator = "&" if "?" in url else "?"
        signed = f"{url}{separator}bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
        signature = self.validator.compute_signature(signed, {})
        return (
            signed,
            body.encode(),
            {"Content-Type": "application/json", "X-Twilio-Signature": signature},
        )


def inbound(
    from_: str,
    body: str = "",
    *,
    to: str = "+15005550006",
    message_sid: str | None = None,
    account_sid: str = ACCOUNT_SID,
    profile_name: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    opt_out: str | None = None,
    messaging_service_sid: str | None = None,
) -> dict[str, str]:
    """The parameters of Twilio's "a message comes in" webhook."""
    message_sid = message_sid or sid("MM" if media else "SM")
    params = {
        "ToCountry": "US",
        "SmsMessageSid": message_sid,
        "NumMedia": str(len(media)),
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    if from_.startswith("whatsapp:"):
        params["WaId"] = from_.removeprefix("whatsapp:+")
        params["MessageType"] = "text" if not media else "image"
    if profile_name is not None:
        params["ProfileName"] = profile_name
    for index, (url, content_type) in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = content_type
    if opt_out is not None:
        params["OptOutType"] = opt_out
    if messaging_service_sid is not None:
        params["MessagingServiceSid"] = messaging_service_sid
    return params


def status(
    message: Mapping[str, str],
    message_status: str,
    *,
    error_code: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    """The parameters of a status callback for a message the stand-in accepted."""
    params = {
        "SmsSid": message["Sid"],
        "SmsStatus": message_status,
        "MessageStatus": message_status,
        "To": message.get("To", ""),
        "MessageSid": message["Sid"],
        "AccountSid": account_sid,
        "From": message.get("From", "") or "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    if message.get("To", "").startswith("whatsapp:"):
        params["ChannelToAddress"] = message["To"].removeprefix("whatsapp:")
    if error_code is not None:
        params["ErrorCode"] = error_code
    return params
