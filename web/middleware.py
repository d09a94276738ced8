"""Middlewares: every error is JSON, every request is timed, every answer carries the
security headers, and no JSON answer is kept by a cache."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from aiohttp import hdrs, web

from core.clock import utcnow
from core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unavailable
from core.logfields import log_fields
from web.api import error_body
from web.keys import METRICS, SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS = {InvalidInput: 400, Forbidden: 403, NotFound: 404, Conflict: 409, Unavailable: 503}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
}


def _http_error_json(exc: web.HTTPException, request: web.Request) -> web.Response:
    if exc.content_type == "application/json" and exc.text:
        body = exc.text
    else:
        message = exc.reason
        if exc.status == 413:
            limit = request.app[SETTINGS].max_body_bytes
            message = f"request body is larger than the limit of {limit} bytes"
        body = json.dumps(error_body(_HTTP_CODES.get(exc.status, "http_error"), message))
    return web.Response(
        status=exc.status, text=body, content_type="application/json", headers=_kept(exc)
    )


def _kept(exc: web.HTTPException) -> dict[str, str]:
    keep = ("Allow", "Retry-After", "Location", "WWW-Authenticate")
    return {name: exc.headers[name] for name in keep if name in exc.headers}


# Not an HTTP status anyone receives: what nginx and others log when the client left first.
CLIENT_CLOSED_REQUEST = 499


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        return web.json_response(error_body(exc.code, exc.message, exc.fields), status=status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error_json(exc, request)
    except ConnectionResetError:
        # The client went away before its request was read or answered: nothing went wrong
        # here, and nobody is left to answer (499, as proxies log it, for the access log).
        log.info("client disconnected", extra=log_fields(path=request.path, method=request.method))
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except Exception:
        log.exception("unhandled error", extra=log_fields(path=request.path, method=request.method))
        return web.json_response(
            error_body("internal", "something went wrong on our side; it has been logged"),
            status=500,
        )


@web.middleware
async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[METRICS].http_latency.labels(request.method, route, str(status)).observe(
            time.perf_counter() - started
        )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/forms/"):
        # Forms may be framed by the customer's website; nothing else may.
        response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/") or response.content_type == "application/json":
        # Customer data and errors: never kept by a browser or a shared cache. Pages and
        # static files set their own caching.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def dated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer's Date header is omnicrm's clock (`core.clock`), the time its records
    carry: the console counts offers down against it, not against the computer it runs on."""
    response = await handler(request)
    if not response.prepared:
        response.headers[hdrs.DATE] = format_datetime(utcnow(), usegmt=True)
    return response
