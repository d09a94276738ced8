"""Health, metrics and the API description."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.outbox import outbox_depth
from web.api import PUBLIC, ApiRoutes, Call, NoBody
from web.keys import METRICS
from web.openapi import ROUTE_DOCS, build_document

routes = ApiRoutes(tag="system")


@routes.get("/healthz", summary="Liveness and database reachability", roles=PUBLIC)
async def healthz(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    checks: dict[str, str] = {}
    try:
        async with call.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )


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
