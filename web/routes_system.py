"""Health, metrics and the API description."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from core.mailboxes import list_mailboxes
from core.models import Mailbox, WebForm
from core.outbox import outbox_depth
from web.api import PUBLIC, ApiRoutes, Call, NoBody
from web.keys import METRICS
from web.openapi import ROUTE_DOCS, build_document

routes = ApiRoutes(tag="system")


@routes.get("/", summary="A start page for people: links to forms, API and health", roles=PUBLIC)
async def start_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        forms = list(
            await session.scalars(
                select(WebForm).where(WebForm.active.is_(True)).order_by(WebForm.slug)
            )
        )
    links = "".join(
        f'<li><a href="/forms/{quote(form.slug)}">{escape(form.title)}</a> '
        f"<code>/forms/{escape(form.slug)}</code></li>"
        for form in forms
    )
    page = START_PAGE.format(forms=links or "<li>No forms yet: <code>omnicrm form add</code></li>")
    return web.Response(text=page, content_type="text/html")


START_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omnicrm</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head>
<body><h1>omnicrm</h1>
<p>The contact-center CRM is running.</p>
<h2>For the team</h2><ul>
<li><a href="/console/">Agent console</a>: offers, inbox, conversations, replies</li>
<li><a href="/monitor/">Queue monitor</a> (supervisors): queues, operators, service level</li>
</ul>
<h2>Web forms</h2><ul>{forms}</ul>
<h2>For integrations and admins</h2><ul>
<li><a href="/api/openapi.json">REST API description (OpenAPI)</a>; sign in with
<code>POST /api/v1/auth/login</code> or use a bearer token</li>
<li><a href="/healthz">Health</a> and <a href="/metrics">Prometheus metrics</a></li>
</ul></body></html>
"""


@routes.get(
    "/healthz",
    summary="Liveness: the database (503 when unreachable) and each mailbox's last poll",
    roles=PUBLIC,
)
async def healthz(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    checks: dict[str, str] = {}
    try:
        async with call.sessions() as session:
            await session.execute(text("SELECT 1"))
            mailboxes = await list_mailboxes(session, active_only=True)
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        mailboxes = []
    for mailbox in mailboxes:
        checks[f"mailbox:{mailbox.name}"] = _mailbox_health(mailbox)
    if checks["database"] != "ok":
        status, code = "unhealthy", 503
    elif not any(value.startswith("error") for value in checks.values()):
        status, code = "ok", 200
    else:
        # A mailbox that cannot be reached is worth an alert, not a restart of the server.
        status, code = "degraded", 200
    return web.json_response({"status": status, "checks": checks}, status=code)


def _mailbox_health(mailbox: Mailbox) -> str:
    failing = mailbox.last_error_at is not None and (
        mailbox.last_success_at is None or mailbox.last_error_at >= mailbox.last_success_at
    )
    if failing:
        return f"error since {mailbox.last_error_at:%Y-%m-%dT%H:%M:%SZ}: {mailbox.last_error}"
    if mailbox.last_success_at is None:
        return "starting"
    return "ok"


@routes.get("/metrics", summary="Prometheus metrics", roles=PUBLIC)
async def metrics(call: Call[NoBody, NoBody]) -> web.StreamResponse:
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
