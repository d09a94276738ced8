"""Customers never see JSON: error pages for browsers, in the visitor's language.

A request is a browser's when its Accept header prefers text/html to application/json (a
browser navigating or posting a form; `fetch()` sends */* and stays with JSON) and its path is
not the API's, a webhook's or the websocket. For those, the JSON error answers the API gives
(404, 405, 413, 429, 500) become small HTML pages in the language the visitor asked for
(`?lang=`, else Accept-Language), keeping the status and headers such as Retry-After.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web

from core.i18n import N_, Translator, negotiate, translator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MACHINE_PATHS = ("/api/", "/hooks/", "/ws", "/i18n/", "/metrics", "/healthz")
_TITLES = {
    404: N_("Page not found"),
    405: N_("This cannot be done here"),
    413: N_("Too much at once"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
}
_EXPLANATIONS = {
    404: N_("There is nothing at this address. Please check the link."),
    405: N_("This page does not accept what was sent. Please go back and try again."),
    413: N_("What you sent is larger than we accept. Please send less and try again."),
    500: N_("Something went wrong on our side. It has been noted; please try again later."),
}
STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    ".code{color:#555}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


def _quality(accept: str, media: str) -> float:
    """How much the Accept header wants `media` (type/subtype): its most specific match."""
    kind = media.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.split(",")[:50]:
        name, _, parameters = part.strip().partition(";")
        name = name.strip().lower()
        specificity = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(name)
        if specificity is None or specificity < best[0]:
            continue
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        best = (specificity, quality)
    return best[1]


def prefers_html(request: web.Request) -> bool:
    """Whether the request is a browser's that should be answered with a page, not JSON."""
    if request.path.startswith(MACHINE_PATHS):
        return False
    accept = request.headers.get("Accept", "")
    return _quality(accept, "text/html") > _quality(accept, "application/json")


def visitor_locale(request: web.Request, wanted: str | None = None) -> str:
    """The supported language for a visitor: `wanted`, `?lang=`, else Accept-Language."""
    return negotiate(
        request.headers.get("Accept-Language"), wanted or request.query.get("lang") or None
    )


def error_page(status: int, tr: Translator, retry_after: int | None = None) -> str:
    """The page for an error status, in `tr`'s language."""
    title = tr.gettext(_TITLES.get(status, N_("Something went wrong")))
    if status == 429:
        seconds = retry_after or 60
        explanation = tr.ngettext(
            "Please wait {n} second and try again.",
            "Please wait {n} seconds and try again.",
            seconds,
        )
    else:
        explanation = tr.gettext(_EXPLANATIONS.get(status, _EXPLANATIONS[500]))
    code = tr.gettext("Error {code}", code=status)
    return (
        f'<!doctype html>\n<html lang="{escape(tr.locale)}"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body><main>\n<h1>{escape(title)}</h1>\n<p>{escape(explanation)}</p>\n"
        f'<p class="code">{escape(code)}</p>\n'
        "</main></body></html>\n"
    )


def _content_security_policy(path: str) -> str:
    policy = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    policy += "form-action 'none'"
    # A form's errors show where the form is: in the customer's website's frame.
    return policy if path.startswith("/forms/") else f"{policy}; frame-ancestors 'none'"


def _retry_after(response: web.StreamResponse) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


@web.middleware
async def browser_error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns the JSON error answers of `errors_as_json` (which runs inside this) into pages
    for browsers; the API and every non-browser client keep JSON."""
    response = await handler(request)
    if (
        response.status not in (*_TITLES, 500)
        or response.content_type != "application/json"
        or not prefers_html(request)
    ):
        return response
    tr = translator(visitor_locale(request))
    page = web.Response(
        status=response.status,
        text=error_page(response.status, tr, _retry_after(response)),
        content_type="text/html",
        headers={
            "Content-Security-Policy": _content_security_policy(request.path),
            "Cache-Control": "no-store",
            "Content-Language": tr.locale,
            "Vary": "Accept, Accept-Language",
        },
    )
    for name in ("Retry-After", "Allow"):
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page
