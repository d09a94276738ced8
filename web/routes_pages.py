"""The browser side: the agent console, the supervisor monitor, the sales pipeline board,
reports, administration, the sign-in page and their static files (plain ES modules and CSS,
no build step).

Every page and file is served with a strict Content-Security-Policy: scripts and styles only
from our own files (no inline code), frames only from our own origin (the sandboxed email
view), nothing from the internet. The monitor and the reports page check the role on the
server: an operator gets a 403 page, not the page's shell. The pages hold no data; their
scripts fetch it from the API with the session cookie and follow /ws.
"""

from __future__ import annotations

import asyncio
import hashlib
from html import escape
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from core.i18n import N_, translator
from core.models import Role
from web.api import PUBLIC, ApiRoutes, Call, NoBody, identify
from web.error_pages import visitor_locale

routes = ApiRoutes(tag="pages")

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Files the static route serves; pages (.html) are only served by their routes below.
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
MONITOR_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
# Supervisors see the admin pages they may use (the team, queues, forms, canned responses);
# the API checks every action again.
ADMIN_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
# No static file's path is longer; a longer one is a 404 without touching the disk.
MAX_STATIC_PATH = 200


@routes.get("/login", summary="The sign-in page of the console and monitor", roles=PUBLIC)
async def login_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    # Nobody is signed in yet: the page speaks the browser's language (?lang= chooses).
    locale = visitor_locale(call.request)
    text = await asyncio.to_thread((STATIC_DIR / "login.html").read_text, "utf-8")
    response = _html(text.replace('<html lang="en">', f'<html lang="{locale}">', 1))
    response.headers["Vary"] = "Accept-Language"
    return response


@routes.get("/console", summary="Redirects to /console/", roles=PUBLIC)
async def console_redirect(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")


@routes.get(
    "/console/",
    summary="The agent console (signed-in operators; others are sent to /login)",
    roles=PUBLIC,
)
async def console_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    return await _signed_in_page(call, "console")


@routes.get("/monitor", summary="Redirects to /monitor/", roles=PUBLIC)
async def monitor_redirect(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/monitor/")


@routes.get(
    "/monitor/",
    summary="The supervisor monitor (supervisors and admins; operators get a 403 page)",
    roles=PUBLIC,
)
async def monitor_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    return await _signed_in_page(
        call,
        "monitor",
        MONITOR_ROLES,
        N_("Supervisors only"),
        N_("The monitor is for supervisors and admins. Your role cannot open it."),
    )


@routes.get("/pipeline", summary="Redirects to /pipeline/", roles=PUBLIC)
async def pipeline_redirect(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/pipeline/")


@routes.get(
    "/pipeline/",
    summary="The sales pipeline board (signed-in operators, supervisors and admins; others"
    " are sent to /login)",
    roles=PUBLIC,
)
async def pipeline_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    # Every operator works leads; the board shows those the API lets them see.
    return await _signed_in_page(call, "pipeline")


@routes.get("/reports", summary="Redirects to /reports/", roles=PUBLIC)
async def reports_redirect(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/reports/")


@routes.get(
    "/reports/",
    summary="Reports: charts, tables and exports (supervisors and admins; operators get a 403"
    " page)",
    roles=PUBLIC,
)
async def reports_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    return await _signed_in_page(
        call,
        "reports",
        MONITOR_ROLES,
        N_("Supervisors only"),
        N_("Reports are for supervisors and admins. Your role cannot open them."),
    )


@routes.get("/admin", summary="Redirects to /admin/", roles=PUBLIC)
async def admin_redirect(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/admin/")


@routes.get(
    "/admin/",
    summary="Administration (admins; supervisors see what they may use; operators get a 403 page)",
    roles=PUBLIC,
)
async def admin_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    return await _signed_in_page(
        call,
        "admin",
        ADMIN_ROLES,
        N_("Admins only"),
        N_("Administration is for admins and supervisors. Your role cannot open it."),
    )


@routes.get(
    "/static/{path:.+}",
    summary="The console's and monitor's scripts, styles and images",
    roles=PUBLIC,
)
async def static_file(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    path = request.match_info["path"]
    content_type = STATIC_TYPES.get(Path(path).suffix)
    data = await asyncio.to_thread(_read_static, path) if content_type else None
    if data is None or content_type is None:
        raise web.HTTPNotFound()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        # Revalidated on every load (cheap 304s), so a new version shows at once.
        "Cache-Control": "no-cache",
        "ETag": etag,
    }
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=content_type, headers=headers)


@routes.get("/favicon.ico", summary="The icon browsers ask for by this name", roles=PUBLIC)
async def favicon(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    data = await asyncio.to_thread(_read_static, "common/favicon.svg")
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=data, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


def _read_static(path: str) -> bytes | None:
    """The file's bytes if `path` names a file inside the static directory, else None.

    None also for anything the file layer cannot open (NUL, over-long names, a directory, a
    dot-file or a `..` segment): every such request is a clean 404, never a 500. Symbolic
    links are followed only as far as the static directory.
    """
    target = _static_target(path)
    if target is None:
        return None
    try:
        return target.read_bytes()
    except (OSError, ValueError):
        return None


def _static_target(path: str) -> Path | None:
    segments = path.split("/")
    if (
        len(path) > MAX_STATIC_PATH
        or "\x00" in path
        or "\\" in path
        or any(not part or part.startswith(".") or len(part) > 255 for part in segments)
    ):
        return None
    try:
        target = STATIC_DIR.joinpath(*segments).resolve()
        if not target.is_relative_to(STATIC_DIR) or not target.is_file():
            return None
    except (OSError, ValueError):
        return None
    return target


async def _signed_in_page(
    call: Call[NoBody, NoBody],
    name: str,
    roles: frozenset[Role] | None = None,
    title: str = "",
    explanation: str = "",
) -> web.Response:
    """`/{name}/` for a signed-in operator (others go to sign in) whose role is in `roles`
    (all when None); another role gets the 403 page with `title` and `explanation`."""
    actor, _ = await identify(call.request)
    if actor is None or actor.operator_id is None:
        raise _to_login(f"/{name}/")
    if roles is not None and actor.role not in roles:
        return _forbidden_page(call.request, title, explanation)
    return await _page(f"{name}/index.html")


def _to_login(next_path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/login?next={quote(next_path, safe='/')}")


async def _page(name: str) -> web.Response:
    text = await asyncio.to_thread((STATIC_DIR / name).read_text, "utf-8")
    return _html(text)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-store",
        },
    )


def _forbidden_page(request: web.Request, title: str, explanation: str) -> web.Response:
    """The 403 page of a page the operator's role cannot open, in the browser's language."""
    tr = translator(visitor_locale(request))
    heading = escape(tr.gettext(title))
    back = escape(tr.gettext("Back to the console"))
    text = (
        f'<!doctype html>\n<html lang="{escape(tr.locale)}"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{heading} · omnicrm</title>\n"
        '<link rel="icon" href="/static/common/favicon.svg" type="image/svg+xml">\n'
        '<link rel="stylesheet" href="/static/common/base.css"></head>\n'
        '<body class="plain-page"><main class="narrow">\n'
        f"<h1>{heading}</h1>\n"
        f"<p>{escape(tr.gettext(explanation))}</p>\n"
        f'<p><a href="/console/">{back}</a></p>\n'
        "</main></body></html>\n"
    )
    response = _html(text, status=403)
    response.headers["Vary"] = "Accept-Language"
    return response
