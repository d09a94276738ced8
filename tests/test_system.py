"""Errors as JSON, body limits, health, metrics, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from core.audit import CLI
from core.forms import create_form
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import ChannelAccount, IdentityKind, Role, utcnow
from core.settings import Settings
from tests.conftest import UserFactory
from web.app import create_app
from web.keys import SESSIONS

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)


async def test_unknown_route_is_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status == 404
    assert_error_shape(await response.json(), "not_found")


async def test_wrong_method_is_json_405(client: TestClient[Any, Any]) -> None:
    response = await client.delete("/api/v1/auth/login")
    assert response.status in (404, 405)
    assert (await response.json())["error"]["code"] in ("method_not_allowed", "not_found")


async def test_malformed_json_is_400_with_message(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    body = await response.json()
    assert_error_shape(body, "invalid_input")
    assert "JSON" in body["error"]["message"]


async def test_invalid_fields_are_named(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "x"})
    assert response.status == 400
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"email", "password"}


async def test_body_over_the_limit_is_413(
    settings: Settings, aiohttp_client: ClientFactory, engine: object
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    client = await aiohttp_client(create_app(small))
    response = await client.post(
        "/api/v1/auth/login",
        data=b'{"email": "' + b"a" * 5000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    body = await response.json()
    assert_error_shape(body, "too_large")
    assert "2048" in body["error"]["message"]


async def test_healthz_reports_the_database(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    # Anonymous callers get the status only (tests/test_health_metrics.py: who sees more).
    assert await response.json() == {"status": "ok"}


async def test_healthz_is_503_when_the_database_is_unreachable(
    aiohttp_client: ClientFactory,
) -> None:
    down = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none", secret_key="x" * 16
    )
    client = await aiohttp_client(create_app(down, background_workers=False))
    response = await client.get("/healthz")
    assert response.status == 503
    assert await response.json() == {"status": "unhealthy"}


@pytest.mark.both_databases
async def test_metrics_count_ingested_interactions_and_latency(
    app: web.Application, client: TestClient[Any, Any]
) -> None:
    async with app[SESSIONS]() as session, session.begin():
        await ingest(
            session,
            InboundEvent(
                channel="sms",
                external_id="SM-metrics",
                addresses=[Address(IdentityKind.PHONE, "+14155550100")],
                text="hi",
            ),
        )
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'omnicrm_interactions_ingested_total{channel="sms"} 1.0' in text
    assert 'omnicrm_http_request_duration_seconds_count{method="GET",route="/healthz"' in text
    assert "omnicrm_outbox_depth" in text


async def test_openapi_document_is_valid_and_lists_every_route(
    app: web.Application, client: TestClient[Any, Any]
) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method not in ("HEAD", "*")
        and route.resource.canonical != "/{tail}"
    }
    assert served, "the app serves routes"
    missing = served - documented
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/healthz"])
async def test_responses_carry_security_headers(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_server_fixture_is_reachable(server: TestServer) -> None:
    assert server.port


@pytest.mark.sqlite_only
async def test_the_favicon_browsers_ask_for_is_the_product_icon(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/favicon.ico")
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
    assert (await response.read()).lstrip().startswith(b"<svg")


async def test_start_page_links_the_console_monitor_and_active_forms(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    async with app[SESSIONS]() as session, session.begin():
        await create_form(session, CLI, slug="contact", title="Write to <us>")
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    assert '<a href="/forms/contact">Write to &lt;us&gt;</a>' in page
    assert "/api/openapi.json" in page
    assert '<a href="/console/">' in page
    assert '<a href="/monitor/">' in page
    assert '<a href="/pipeline/">Sales pipeline</a>' in page


async def test_healthz_shows_each_enabled_account_and_a_failing_one_degrades(
    make_user: UserFactory, app: web.Application
) -> None:
    admin = await make_user(Role.ADMIN)
    now = utcnow()
    async with app[SESSIONS]() as session, session.begin():
        for channel, name, success, error, enabled in (
            ("email", "support", now, None, True),
            ("email", "sales", now - timedelta(minutes=5), now, True),
            ("email", "new", None, None, True),
            ("email", "retired", None, now, False),
            ("sms", "support", now, None, True),
        ):
            session.add(
                ChannelAccount(
                    channel=channel,
                    name=name,
                    settings={},
                    enabled=enabled,
                    last_success_at=success,
                    last_error_at=error,
                    last_error="connection refused" if error else None,
                )
            )
    response = await admin.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert sorted(checks) == [
        "database",
        "email:new",
        "email:sales",
        "email:support",
        "erp",
        "sms:support",
    ]
    assert checks["erp"] == "ok"  # the embedded ERP, in omnicrm's own database
    assert checks["email:support"] == "ok"
    assert checks["email:new"] == "starting"
    assert checks["email:sales"].startswith("error since ")
    assert checks["email:sales"].endswith("connection refused")
    assert checks["sms:support"] == "ok"
