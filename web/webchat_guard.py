"""Who calls the website chat's widget routes, checked before anything in the request is
parsed, and the CORS headers of their answers.

`widget_guard`: the widget account named in the path must exist and be enabled (404), and
the request's `Origin` must be one of its `allowed_origins` (403: the snippet copied onto
another site does nothing). `visitor_guard` adds the visitor token (`Authorization: Bearer`,
or `?token=` for the websocket, which cannot send headers), which must be this widget's (401).
Requests per IP and per visitor are limited (429 with Retry-After). Answers carry CORS
headers for the allowed origin only; the widget's static files are public
(`Access-Control-Allow-Origin: *`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from channels.webchat.parse import CHANNEL
from channels.webchat.settings import WebchatSettings
from channels.webchat.visitors import Visitor, key_from_secret, read_token
from core.channel_accounts import AccountView
from core.errors import InvalidInput
from core.i18n import Translator, negotiate, translator
from core.settings import Settings
from web.api import error_body
from web.keys import SESSIONS, SETTINGS, WEBHOOK_ACCOUNTS
from web.ratelimit import enforce_key

# The allowed origin a widget request came from (its answer's CORS header).
ORIGIN_KEY = web.RequestKey("webchat_origin", str)
PER_IP_PER_MINUTE = 120
PER_VISITOR_PER_MINUTE = 60


@dataclass(frozen=True)
class Widget:
    """The widget account a request is for, and the origin it came from."""

    account: AccountView
    settings: WebchatSettings
    origin: str

    @property
    def queue_id(self) -> int | None:
        return self.account.queue_id


@dataclass(frozen=True)
class VisitorCall:
    widget: Widget
    visitor: Visitor
    locale: str

    @property
    def translate(self) -> Translator:
        return translator(self.locale)


def _refuse(status: int, code: str, message: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        429: web.HTTPTooManyRequests,
    }
    return kinds[status](
        text=json.dumps(error_body(code, message)), content_type="application/json"
    )


async def widget_guard(request: web.Request) -> Widget:
    """The enabled widget account named in the path, called from one of its origins."""
    name = request.match_info["account"]
    if not name.isprintable() or len(name) > 100:
        raise _refuse(404, "not_found", "no such website chat")
    # Kept per process, emptied when an account changes (as webhooks find theirs).
    account = await request.app[WEBHOOK_ACCOUNTS].get(request.app[SESSIONS], CHANNEL, name, ())
    if account is None:
        raise _refuse(404, "not_found", f"no website chat {name!r}")
    settings = WebchatSettings.model_validate(dict(account.settings))
    origin = request.headers.get("Origin") or ""
    if not settings.allows(origin):
        raise _refuse(403, "forbidden", "this website may not show the chat")
    request[ORIGIN_KEY] = origin
    enforce_key(request, "webchat-ip", PER_IP_PER_MINUTE, request.remote or "unknown")
    return Widget(account, settings, origin)


async def visitor_guard(request: web.Request) -> VisitorCall:
    """A widget request with its visitor's token (header, or `?token=` for the websocket)."""
    widget = await widget_guard(request)
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    token = token or request.query.get("token", "")
    key = key_from_secret(request.app[SETTINGS].secret_key)
    visitor = read_token(key, token, widget.account.id) if token else None
    if visitor is None:
        raise _refuse(401, "unauthorized", "the visitor token is missing or not this chat's")
    enforce_key(request, "webchat-visitor", PER_VISITOR_PER_MINUTE, visitor.visitor_id)
    locale = negotiate(request.headers.get("Accept-Language"), request.query.get("lang"))
    return VisitorCall(widget, visitor, locale)


def attachment_limit(widget: Widget, settings: Settings) -> int:
    """The largest file a visitor may send: the widget's limit, the server's, and room in a
    request for the rest of the upload (a bigger body is refused before it is read)."""
    room = settings.max_body_bytes - 64 * 1024
    return max(0, min(widget.settings.max_attachment_bytes, settings.max_attachment_bytes, room))


def translated(error: InvalidInput, translate: Translator) -> web.Response:
    """A 400 whose messages are in the visitor's language."""
    body = error_body(
        error.code,
        translate.gettext(error.message),
        {name: translate.gettext(text) for name, text in error.fields.items()},
    )
    return web.json_response(body, status=400)


# --- CORS --------------------------------------------------------------------------------------


@web.middleware
async def webchat_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The widget's files for any website; its API for the widget's own origins only."""
    path = request.path
    if path.startswith("/static/widget/"):
        response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response
    if not path.startswith("/webchat/"):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _cors(request, exc)
        raise
    _cors(request, response)
    return response


def _cors(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.get(ORIGIN_KEY)
    if origin and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
