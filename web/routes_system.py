"""Health, metrics and the API description.

What anonymous callers learn is the least that is useful: `/healthz` answers its status and
status code only (enough for a load balancer); the checks, which name channel accounts and
quote upstream errors, and the ERP's details (its state, breaker, latency, the age of the
answers it serves) are for admins and holders of the metrics token. `/metrics` answers callers
with the metrics token or from `metrics_allowed_addresses` (this machine by default), nobody
else.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Sequence
from html import escape
from typing import Literal
from urllib.parse import quote

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from core.channel_accounts import health_of, list_accounts
from core.i18n import Translator, translator
from core.models import Role, WebForm
from core.outbox import outbox_depth
from core.settings import Settings
from erp_bridge.service import ErpStatus
from web.api import PUBLIC, ApiRoutes, Call, NoBody, error_body, identify
from web.error_pages import visitor_locale
from web.keys import ERP, METRICS
from web.openapi import ROUTE_DOCS, build_document

routes = ApiRoutes(tag="system")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "unhealthy"]
    checks: dict[str, str] | None = Field(
        default=None,
        description="for admins and the metrics token: 'database' and each enabled channel "
        "account as '<channel>:<name>', each 'ok', 'starting', 'unreachable: ...' or "
        "'error since ...: <reason>'",
    )
    erp: ErpStatus | None = Field(
        default=None,
        description="for admins and the metrics token: the ERP's state (ok, degraded: serving "
        "cached answers as of stale_as_of, down), its circuit breaker, the last answered "
        "call's latency",
    )


@routes.get("/", summary="A start page for people: links to forms, API and health", roles=PUBLIC)
async def start_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        forms = list(
            await session.scalars(
                select(WebForm).where(WebForm.active.is_(True)).order_by(WebForm.slug)
            )
        )
    tr = translator(visitor_locale(call.request))
    links = "".join(
        f'<li><a href="/forms/{quote(form.slug)}">{escape(form.title)}</a> '
        f"<code>/forms/{escape(form.slug)}</code></li>"
        for form in forms
    )
    no_forms = tr.gettext("No forms yet: {command}", command="\0")
    no_forms = escape(no_forms).replace("\0", "<code>omnicrm form add</code>")
    response = web.Response(
        text=start_page_html(tr, links or f"<li>{no_forms}</li>"), content_type="text/html"
    )
    response.headers["Content-Language"] = tr.locale
    response.headers["Vary"] = "Accept-Language"
    return response


def start_page_html(tr: Translator, forms: str) -> str:
    """The start page in `tr`'s language; `forms` is the list items of the forms (HTML)."""
    text = {
        "running": tr.gettext("The contact-center CRM is running."),
        "team": tr.gettext("For the team"),
        "console": tr.gettext("Agent console"),
        "console_what": tr.gettext("offers, inbox, conversations, replies"),
        "pipeline": tr.gettext("Sales pipeline"),
        "pipeline_what": tr.gettext("leads by stage, their value and next steps"),
        "monitor": tr.gettext("Queue monitor"),
        "monitor_what": tr.gettext("(supervisors): queues, operators, service level"),
        "admin": tr.gettext("Administration"),
        "admin_what": tr.gettext(
            "(admins; supervisors in part): the team, queues, forms, channels, tokens, audit log"
        ),
        "forms_title": tr.gettext("Web forms"),
        "integrations": tr.gettext("For integrations and admins"),
        "api": tr.gettext("REST API description (OpenAPI)"),
        "sign_in": tr.gettext("sign in with {login} or use a bearer token", login="\0"),
        "health": tr.gettext("Health"),
        "metrics": tr.gettext("Prometheus metrics"),
    }
    safe = {name: escape(value) for name, value in text.items()}
    safe["sign_in"] = safe["sign_in"].replace("\0", "<code>POST /api/v1/auth/login</code>")
    return START_PAGE.format(lang=escape(tr.locale), forms=forms, **safe)


START_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>omnicrm</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head>
<body><h1>omnicrm</h1>
<p>{running}</p>
<h2>{team}</h2><ul>
<li><a href="/console/">{console}</a>: {console_what}</li>
<li><a href="/pipeline/">{pipeline}</a>: {pipeline_what}</li>
<li><a href="/monitor/">{monitor}</a> {monitor_what}</li>
<li><a href="/admin/">{admin}</a> {admin_what}</li>
</ul>
<h2>{forms_title}</h2><ul>{forms}</ul>
<h2>{integrations}</h2><ul>
<li><a href="/api/openapi.json">{api}</a>; {sign_in}</li>
<li><a href="/healthz">{health}</a>, <a href="/metrics">{metrics}</a></li>
</ul></body></html>
"""


@routes.get(
    "/healthz",
    summary="Liveness: the status (503 when the database is unreachable); the checks (the "
    "database, each channel account's health, the ERP's state) for admins and the metrics token",
    roles=PUBLIC,
    response=HealthOut,
    also=(503,),
)
async def healthz(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    checks, erp = await _checks(call)
    if checks["database"] != "ok":
        status, code = "unhealthy", 503
    elif not any(value.startswith("error") for value in checks.values()):
        status, code = "ok", 200
    else:
        # An account that cannot be reached is worth an alert, not a restart of the server.
        status, code = "degraded", 200
    if await _may_see_details(call):
        body: dict[str, object] = {"status": status, "checks": checks}
        if erp is not None:
            body["erp"] = erp.model_dump(mode="json")
        return web.json_response(body, status=code)
    return web.json_response({"status": status}, status=code)


async def _checks(call: Call[NoBody, NoBody]) -> tuple[dict[str, str], ErpStatus | None]:
    checks: dict[str, str] = {}
    try:
        async with call.sessions() as session:
            await session.execute(text("SELECT 1"))
            accounts = await list_accounts(session, enabled_only=True)
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        accounts = []
    for account in accounts:
        checks[f"{account.channel}:{account.name}"] = health_of(account)
    service = call.request.app.get(ERP)
    erp = service.health() if service is not None else None
    if erp is not None:
        checks["erp"] = erp_check(erp)
    return checks, erp


def erp_check(erp: ErpStatus) -> str:
    """The ERP's line of /healthz: ok, or what is wrong ("error: ..." makes it degraded)."""
    if erp.state == "ok":
        return "ok"
    if erp.state == "degraded":
        return f"error: serving cached answers ({erp.last_error})"
    return f"error: {erp.problem or erp.last_error or 'unavailable'}"


async def _may_see_details(call: Call[NoBody, NoBody]) -> bool:
    """Holders of the metrics token and signed-in admins (session or admin-role token)."""
    if has_metrics_token(call.request, call.settings):
        return True
    try:
        actor, _ = await identify(call.request)
    except (SQLAlchemyError, OSError):
        return False  # the database is down: nobody can be recognised
    return actor is not None and actor.role == Role.ADMIN


def bearer_token(request: web.Request) -> str | None:
    """The bearer token sent (possibly empty), or None if no bearer authorization was sent."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def has_metrics_token(request: web.Request, settings: Settings) -> bool:
    sent = bearer_token(request)
    if sent is None or settings.metrics_token is None:
        return False
    return hmac.compare_digest(sent.encode(), settings.metrics_token.get_secret_value().encode())


def address_allowed(
    remote: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether the peer address `remote` is in one of `networks` (IPv4-mapped IPv6 as IPv4)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def check_metrics_access(request: web.Request, settings: Settings) -> None:
    """Let the caller scrape, or raise 401 (a wrong token) or 403 (not allowed from here).

    A bearer token, if sent, must be the metrics token, wherever the caller is; without one
    the caller's address must be allowed. The address is the TCP peer's: behind a reverse
    proxy on the same machine every request comes from there (see README, Operations).
    """
    if bearer_token(request) is not None:
        if has_metrics_token(request, settings):
            return
        raise web.HTTPUnauthorized(
            text=json.dumps(error_body("unauthorized", "wrong metrics token")),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="omnicrm metrics"'},
        )
    if not address_allowed(request.remote, settings.metrics_networks):
        raise web.HTTPForbidden(
            text=json.dumps(
                error_body(
                    "forbidden",
                    "metrics are served with the metrics token (metrics_token) or to "
                    "metrics_allowed_addresses",
                )
            ),
            content_type="application/json",
        )


@routes.get(
    "/metrics",
    summary="Prometheus metrics: with the metrics token, or from metrics_allowed_addresses",
    roles=PUBLIC,
    errors=(401, 403),
)
async def metrics(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    check_metrics_access(call.request, call.settings)
    registry = call.request.app[METRICS]
    async with call.sessions() as session:
        depth = await outbox_depth(session)
    registry.outbox_depth.clear()
    for channel, count in depth.items():
        registry.outbox_depth.labels(channel).set(count)
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/openapi.json", summary="This document", roles=PUBLIC)
async def openapi(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    return web.json_response(build_document(call.request.app[ROUTE_DOCS]))
