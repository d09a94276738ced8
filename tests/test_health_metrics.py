"""What anonymous visitors learn: /healthz's status only, /metrics only for the metrics token
or allowed addresses, JSON answers never cached, links built from public_url; and what the
interaction counters count."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from core.audit import CLI
from core.auth import create_token
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.forms import create_form
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import ChannelAccount, IdentityKind, Role, utcnow
from core.outbox import Delivery, Sender
from core.settings import Settings, SettingsError, load_settings
from erp_bridge import config as erp_config
from tests.conftest import User, UserFactory
from tests.erp_standins.erpnext import API_KEY, API_SECRET, ErpNextStandIn, proxy_error, seed
from web.app import create_app
from web.keys import ERP
from web.routes_system import address_allowed

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]
ServerFactory = Callable[..., Awaitable[TestServer]]

METRICS_TOKEN = "prometheus-scrape-token-0123456789"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


async def add_failing_mailbox(sessions: SessionFactory) -> None:
    now = utcnow()
    async with sessions() as session, session.begin():
        session.add(
            ChannelAccount(
                channel="email",
                name="secret-sales",
                settings={"imap_host": "imap.internal.example"},
                last_success_at=now - timedelta(minutes=5),
                last_error_at=now,
                last_error="connection refused by imap.internal.example",
            )
        )


async def bearer(sessions: SessionFactory, role: Role) -> dict[str, str]:
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, f"{role}-token", role)
    return {"Authorization": f"Bearer {plain}"}


async def test_anonymous_callers_learn_the_status_only(
    client: Client, sessions: SessionFactory
) -> None:
    await add_failing_mailbox(sessions)
    response = await client.get("/healthz")
    assert response.status == 200
    raw = await response.text()
    assert await response.json() == {"status": "degraded"}
    assert "secret-sales" not in raw
    assert "internal.example" not in raw


@pytest.mark.parametrize(
    ("caller", "sees_checks"),
    [
        ("admin session", True),
        ("admin token", True),
        ("metrics token", True),
        ("supervisor session", False),
        ("integration token", False),
        ("wrong metrics token", False),
    ],
)
async def test_admins_and_the_metrics_token_see_the_checks(
    client: Client,
    make_user: UserFactory,
    sessions: SessionFactory,
    caller: str,
    sees_checks: bool,
) -> None:
    await add_failing_mailbox(sessions)
    http, headers = client, {}
    if caller.endswith("session"):
        user: User = await make_user(Role(caller.split()[0]))
        http = user.client
    elif caller == "admin token":
        headers = await bearer(sessions, Role.ADMIN)
    elif caller == "integration token":
        headers = await bearer(sessions, Role.INTEGRATION)
    else:
        token = METRICS_TOKEN if caller == "metrics token" else METRICS_TOKEN + "x"
        headers = {"Authorization": f"Bearer {token}"}
    response = await http.get("/healthz", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "degraded"
    if sees_checks:
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["email:secret-sales"].endswith(
            "connection refused by imap.internal.example"
        )
    else:
        assert body == {"status": "degraded"}


async def test_an_unreachable_database_is_503_for_everyone_with_details_for_the_token(
    aiohttp_client: ClientFactory,
) -> None:
    down = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none",
        secret_key="x" * 16,
        metrics_token=SecretStr(METRICS_TOKEN),
    )
    client = await aiohttp_client(create_app(down, background_workers=False))
    anonymous = await client.get("/healthz")
    assert anonymous.status == 503
    assert await anonymous.json() == {"status": "unhealthy"}
    detailed = await client.get("/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert detailed.status == 503
    assert (await detailed.json())["checks"]["database"].startswith("unreachable")


async def test_metrics_answer_this_machine_by_default(client: Client) -> None:
    # The test client connects from 127.0.0.1, inside the default allowed addresses.
    response = await client.get("/metrics")
    assert response.status == 200
    assert "omnicrm_interactions_ingested_total" in await response.text()


@pytest.fixture
async def remote_client(
    settings: Settings, engine: AsyncEngine, aiohttp_client: ClientFactory
) -> Client:
    """A client the server treats as elsewhere: 127.0.0.1 is not an allowed address."""
    elsewhere = settings.model_copy(update={"metrics_allowed_addresses": ["10.0.0.0/8"]})
    return await aiohttp_client(create_app(elsewhere, background_workers=False))


async def test_metrics_refuse_other_addresses_without_the_token(remote_client: Client) -> None:
    response = await remote_client.get("/metrics")
    assert response.status == 403
    raw = await response.text()
    assert "omnicrm_" not in raw
    error = (await response.json())["error"]
    assert error["code"] == "forbidden"
    assert "metrics_token" in error["message"]


async def test_metrics_answer_the_token_from_anywhere(remote_client: Client) -> None:
    response = await remote_client.get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status == 200
    assert "omnicrm_interactions_ingested_total" in await response.text()


@pytest.mark.parametrize("token", [METRICS_TOKEN[:-1], "", METRICS_TOKEN + " extra"])
async def test_a_wrong_metrics_token_is_401_even_from_an_allowed_address(
    client: Client, token: str
) -> None:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "omnicrm_" not in await response.text()


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4 on a dual-stack socket
        ("10.1.2.3", False),
        ("::ffff:10.1.2.3", False),
        ("fe80::1%eth0", False),
        ("not an address", False),
        (None, False),
    ],
)
def test_allowed_addresses_are_matched_as_networks(remote: str | None, allowed: bool) -> None:
    networks = Settings(secret_key="x" * 16).metrics_networks
    assert address_allowed(remote, networks) is allowed


def test_a_bad_allowed_address_is_one_clear_settings_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNICRM_METRICS_ALLOWED_ADDRESSES", '["10.0.0.0/8", "prometheus.lan"]')
    with pytest.raises(SettingsError, match=r"metrics_allowed_addresses.*'prometheus\.lan'") as exc:
        load_settings()
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/auth/me", "/api/v1/contacts", "/api/openapi.json", "/api/v1/nothing", "/healthz"],
)
async def test_json_answers_are_never_cached(make_user: UserFactory, path: str) -> None:
    admin = await make_user(Role.ADMIN)
    for http in (admin.client, await_anonymous(admin)):
        response = await http.get(path)
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store", (path, response.status)


def await_anonymous(user: User) -> Client:
    """A client on the same server without the user's cookies."""
    user.client.session.cookie_jar.clear()
    return user.client


async def test_json_errors_outside_the_api_are_never_cached_and_files_keep_theirs(
    client: Client,
) -> None:
    missing = await client.get("/no-such-page")
    assert missing.status == 404
    assert missing.headers["Cache-Control"] == "no-store"
    static = await client.get("/static/common/base.css")
    assert static.headers["Cache-Control"] == "no-cache"


async def test_the_embed_snippet_uses_public_url_whatever_the_host_header(
    settings: Settings,
    engine: AsyncEngine,
    sessions: SessionFactory,
    aiohttp_client: ClientFactory,
    aiohttp_server: ServerFactory,
) -> None:
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact")
    public = settings.model_copy(update={"public_url": "https://crm.example.com/help"})
    client = await aiohttp_client(create_app(public, background_workers=False))
    response = await client.get("/forms/contact/embed", headers={"Host": "evil.example"})
    page = await response.text()
    # The snippet is shown escaped in a textarea, the link as it is.
    assert "src=&quot;https://crm.example.com/help/forms/contact&quot;" in page
    assert 'href="https://crm.example.com/help/forms/contact"' in page
    assert "evil.example" not in page


async def test_form_links_in_the_api_use_public_url(
    settings: Settings,
    engine: AsyncEngine,
    sessions: SessionFactory,
    aiohttp_client: ClientFactory,
) -> None:
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact")
    public = settings.model_copy(update={"public_url": "https://crm.example.com/help"})
    client = await aiohttp_client(create_app(public, background_workers=False))
    headers = {**(await bearer(sessions, Role.ADMIN)), "Host": "evil.example"}
    response = await client.get("/api/v1/forms", headers=headers)
    assert response.status == 200
    [form] = await response.json()
    assert form["url"] == "https://crm.example.com/help/forms/contact"
    assert form["embed_url"] == "https://crm.example.com/help/forms/contact/embed"


async def test_without_public_url_links_follow_the_request(
    client: Client, sessions: SessionFactory, server: TestServer
) -> None:
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact")
    page = await (await client.get("/forms/contact/embed")).text()
    assert f"src=&quot;http://127.0.0.1:{server.port}/forms/contact&quot;" in page


class AcceptingProvider(Sender):
    """Stands in for the email provider outside the process: accepts every message."""

    def __init__(self) -> None:
        self.accepted: list[Delivery] = []

    async def do_send(self, delivery: Delivery) -> str | None:
        self.accepted.append(delivery)
        return f"provider-{delivery.outbox_id}"


def counter(text: str, name: str, channel: str) -> float:
    found = re.search(rf'^{name}{{channel="{channel}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.both_databases
async def test_ingested_counts_inbound_only_and_sent_counts_delivered_replies(
    settings: Settings,
    engine: AsyncEngine,
    sessions: SessionFactory,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    make_user: UserFactory,
) -> None:
    provider = AcceptingProvider()
    app = create_app(settings, senders={"email": provider}, routing=False)
    client = await aiohttp_client(await aiohttp_server(app))
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact")
    submitted = await client.post(
        "/forms/contact", json={"email": "ann@example.com", "message": "Do you ship to Norway?"}
    )
    assert submitted.status == 201
    conversation = (await submitted.json())["conversation_id"]

    supervisor = await make_user(Role.SUPERVISOR)
    # make_user's client talks to the fixture's server; sign in on this one.
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": supervisor.operator.email, "password": "correct horse battery"},
    )
    csrf = {"X-CSRF-Token": (await login.json())["csrf_token"]}
    note = await client.post(
        f"/api/v1/conversations/{conversation}/notes", json={"text": "VIP"}, headers=csrf
    )
    assert note.status == 201, await note.text()
    reply = await client.post(
        f"/api/v1/conversations/{conversation}/reply", json={"text": "We do."}, headers=csrf
    )
    assert reply.status == 201, await reply.text()

    async with asyncio.timeout(10):
        while True:
            text = await (await client.get("/metrics")).text()
            if counter(text, "omnicrm_interactions_sent_total", "email") >= 1:
                break
            await asyncio.sleep(0.05)
    assert len(provider.accepted) == 1
    assert counter(text, "omnicrm_interactions_sent_total", "email") == 1.0
    assert counter(text, "omnicrm_interactions_ingested_total", "webform") == 1.0
    assert counter(text, "omnicrm_interactions_ingested_total", "email") == 0.0


# --- the ERP in /healthz and /metrics ----------------------------------------------------------


@pytest.fixture
async def erpnext() -> AsyncIterator[ErpNextStandIn]:
    site = ErpNextStandIn()
    seed(site)
    await site.start()
    yield site
    await site.close()


async def customer_writes(sessions: SessionFactory, email: str) -> int:
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id=f"erp-{email}",
                addresses=[Address(IdentityKind.EMAIL, email)],
                text="Where is my order?",
            ),
        )
    return arrived.contact_id


def erp_series(text: str) -> dict[str, float]:
    """The ERP's state gauges in a scrape, by name (`omnicrm_erp_up{erp="erpnext"} 1.0`)."""
    return {
        name: float(value)
        for name, value in re.findall(
            r"^(omnicrm_erp_(?:up|degraded|circuit_open|last_latency_seconds))"
            r'\{erp="erpnext"\} (\S+)$',
            text,
            re.MULTILINE,
        )
    }


@pytest.mark.sqlite_only
async def test_healthz_and_metrics_show_the_erp_degraded_then_down_with_its_breaker_open(
    app: web.Application,
    client: Client,
    make_user: UserFactory,
    sessions: SessionFactory,
    cipher: CredentialCipher,
    erpnext: ErpNextStandIn,
) -> None:
    async with sessions() as session, session.begin():
        await erp_config.set_connection(
            session,
            CLI,
            cipher,
            "erpnext",
            {"url": erpnext.url, "api_key": API_KEY, "api_secret": API_SECRET},
        )
    await app[ERP].refresh(force=True)  # as the service notices a change (within 5 s)
    kim = await customer_writes(sessions, "kim.lee@example.com")
    operator = await make_user(Role.OPERATOR)
    admin = await make_user(Role.ADMIN)
    card = await (await operator.get(f"/api/v1/contacts/{kim}/erp")).json()
    assert card["customer"]["name"] == "Kim Lee"
    answered_at = datetime.fromisoformat(card["as_of"])

    healthy = await (await admin.get("/healthz")).json()
    assert (healthy["status"], healthy["checks"]["erp"]) == ("ok", "ok")
    erp = healthy["erp"]
    assert (erp["state"], erp["kind"], erp["breaker"]) == ("ok", "erpnext", "closed")
    assert erp["latency_ms"] > 0
    assert erp["stale_as_of"] is None
    scraped = erp_series(await (await client.get("/metrics")).text())
    assert scraped["omnicrm_erp_up"] == 1.0
    assert scraped["omnicrm_erp_circuit_open"] == 0.0
    assert scraped["omnicrm_erp_degraded"] == 0.0
    assert scraped["omnicrm_erp_last_latency_seconds"] == pytest.approx(erp["latency_ms"] / 1000)

    # The site goes down behind its proxy: operators reload Kim's card twice (three calls
    # each); the last answers are served as of then, and after five failures the breaker opens.
    erpnext.script(*(proxy_error(502) for _ in range(10)))
    failed_from = utcnow()
    for _ in range(2):
        stale = await (await operator.get(f"/api/v1/contacts/{kim}/erp?fresh=true")).json()
        assert stale["stale"] is True
        assert stale["customer"]["name"] == "Kim Lee"
    asked = len(erpnext.requests)
    degraded = await (await admin.get("/healthz")).json()
    assert degraded["status"] == "degraded"
    assert degraded["checks"]["erp"].startswith("error: serving cached answers (")
    erp = degraded["erp"]
    assert (erp["state"], erp["breaker"]) == ("degraded", "open")
    assert answered_at <= datetime.fromisoformat(erp["stale_as_of"]) <= failed_from
    assert "502" in erp["last_error"]
    assert erp["latency_ms"] > 0  # the last answered call's
    # Anonymous callers learn the status, as for every other check: nothing of the ERP.
    assert await (await client.get("/healthz")).json() == {"status": "degraded"}
    text = await (await client.get("/metrics")).text()
    scraped = erp_series(text)
    assert (scraped["omnicrm_erp_up"], scraped["omnicrm_erp_degraded"]) == (0.0, 1.0)
    assert scraped["omnicrm_erp_circuit_open"] == 1.0
    assert re.search(
        # The sixth call (the second reload's invoices) was refused by the breaker.
        r'^omnicrm_erp_requests_total\{erp="erpnext",operation="invoices",'
        r'outcome="circuit_open"\} 1\.0$',
        text,
        re.MULTILINE,
    )

    # Someone nobody asked about yet: nothing cached, the breaker open, the ERP not asked.
    stranger = await customer_writes(sessions, "new.customer@example.com")
    unknown = await (await operator.get(f"/api/v1/contacts/{stranger}/erp")).json()
    assert unknown["error"] == "the erpnext ERP is not asked for a while: it kept failing"
    assert len(erpnext.requests) == asked
    down = await (await admin.get("/healthz")).json()
    assert down["status"] == "degraded"
    # The line says why the ERP is down (its last failure); the breaker says it is not asked.
    assert down["checks"]["erp"].startswith("error: ERPNext failed to answer")
    assert "HTTP 502" in down["checks"]["erp"]
    assert (down["erp"]["state"], down["erp"]["breaker"]) == ("down", "open")
    assert down["erp"]["stale_as_of"] is None
    scraped = erp_series(await (await client.get("/metrics")).text())
    assert (scraped["omnicrm_erp_up"], scraped["omnicrm_erp_degraded"]) == (0.0, 0.0)
    assert scraped["omnicrm_erp_circuit_open"] == 1.0
