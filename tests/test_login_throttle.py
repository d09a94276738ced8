"""Failed sign-ins are throttled per account and per client address, in the database: a
growing delay, then 429 with Retry-After until the window passes; a success resets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from sqlalchemy import func, select

from core.clock import ManualClock, using
from core.db import SessionFactory
from core.login_throttle import Policy, failure_delay
from core.models import AuditEntry, LoginThrottle
from core.settings import Settings, SettingsError, load_settings
from tests.conftest import PASSWORD, UserFactory
from web.app import create_app
from web.keys import SETTINGS
from web.origins import client_address

pytestmark = pytest.mark.both_databases  # tests/conftest.py

START = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
WRONG = "not the password at all"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No delay (its own test turns it on); the test client stands behind a trusted proxy, so
    # X-Forwarded-For gives each request the client address the test wants.
    return settings.model_copy(
        update={
            "login_failure_delay_seconds": 0.0,
            "login_failures_per_address": 15,
            "trusted_proxies": ["127.0.0.1", "::1"],
        }
    )


async def login(
    client: TestClient[Any, Any], email: str, password: str, address: str = "192.0.2.1"
) -> ClientResponse:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )
    await response.read()
    return response


async def audit_entries(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def test_the_eleventh_attempt_in_a_minute_is_refused_until_the_window_passes(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    clock = ManualClock(START)
    with using(clock):
        email = (await make_user()).operator.email
        for _ in range(10):
            assert (await login(client, email, WRONG)).status == 401
            clock.advance(2)
        # 20 seconds after the first failure: refused, even with the right password.
        refused = await login(client, email, PASSWORD)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "40"
        body = await refused.json()
        assert body["error"]["code"] == "rate_limited"
        assert "40 seconds" in body["error"]["message"]
        assert "omnicrm_session" not in refused.cookies
        clock.advance(39)
        last_second = await login(client, email, PASSWORD)
        assert last_second.status == 429
        assert last_second.headers["Retry-After"] == "1"
        clock.advance(1)
        assert (await login(client, email, PASSWORD)).status == 200


async def test_lock_out_and_every_refusal_are_audited(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    clock = ManualClock(START)
    with using(clock):
        email = (await make_user()).operator.email
        for _ in range(9):
            await login(client, email, WRONG, address="198.51.100.7")
        assert await audit_entries(sessions, "login.locked") == []
        await login(client, email, WRONG, address="198.51.100.7")  # the 10th locks
        clock.advance(5)
        await login(client, email, PASSWORD, address="198.51.100.7")
        await login(client, email.upper(), WRONG, address="198.51.100.8")
    assert len(await audit_entries(sessions, "login.failed")) == 10
    [locked] = await audit_entries(sessions, "login.locked")
    assert locked.details == {
        "scope": "account",
        "key": email,
        "failures": 10,
        "until": "2031-03-04T09:01:00+00:00",
    }
    refusals = await audit_entries(sessions, "login.refused")
    assert [entry.details for entry in refusals] == [
        {"email": email, "address": address, "scopes": ["account"], "retry_after": 55}
        for address in ("198.51.100.7", "198.51.100.8")
    ]
    assert [entry.actor_label for entry in refusals] == [
        "anonymous:198.51.100.7",
        "anonymous:198.51.100.8",
    ]


async def test_a_success_resets_the_accounts_count(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    email = (await make_user()).operator.email
    for n in range(9):
        assert (await login(client, email, WRONG, f"192.0.2.{n}")).status == 401
    assert (await login(client, email, PASSWORD)).status == 200
    # A fresh allowance of ten failures, then the refusal.
    statuses = [(await login(client, email, WRONG, f"192.0.2.{n}")).status for n in range(11)]
    assert statuses == [401] * 10 + [429]


async def test_an_address_failing_across_accounts_is_refused_on_every_account(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    email = (await make_user()).operator.email
    stuffing = "203.0.113.50"
    # Signing in does not use up the address's allowance (an office behind one address).
    for _ in range(20):
        assert (await login(client, email, PASSWORD, stuffing)).status == 200
    for n in range(15):  # the address limit; no account sees more than one failure
        assert (await login(client, f"victim{n}@example.com", WRONG, stuffing)).status == 401
    refused = await login(client, email, PASSWORD, stuffing)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) in range(1, 61)
    [entry] = await audit_entries(sessions, "login.refused")
    assert entry.details["scopes"] == ["address"]
    # The account itself is not locked: from elsewhere its owner signs in.
    assert (await login(client, email, PASSWORD, "198.51.100.2")).status == 200


async def test_unknown_emails_are_throttled_like_real_ones(client: TestClient[Any, Any]) -> None:
    statuses = [(await login(client, "nobody@example.com", WRONG)).status for _ in range(11)]
    assert statuses == [401] * 10 + [429]


async def test_parallel_attempts_never_get_past_the_limit(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    email = (await make_user()).operator.email
    responses = await asyncio.gather(
        *(login(client, email, WRONG, f"198.51.100.{n}") for n in range(1, 26))
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [401] * 10 + [429] * 15


async def test_server_processes_sharing_a_database_share_the_counts(
    settings: Settings,
    client: TestClient[Any, Any],
    make_user: UserFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    # A second application with its own engine and memory, as another `omnicrm serve` has.
    other = await aiohttp_client(
        await aiohttp_server(create_app(settings, background_workers=False))
    )
    email = (await make_user()).operator.email
    for _ in range(5):
        assert (await login(client, email, WRONG)).status == 401
        assert (await login(other, email, WRONG)).status == 401
    assert (await login(client, email, PASSWORD)).status == 429
    assert (await login(other, email, PASSWORD)).status == 429


def test_the_delay_grows_with_each_failure_up_to_a_cap() -> None:
    policy = Policy(first_delay_seconds=0.5)
    delays = [failure_delay(failures, policy) for failures in range(1, 11)]
    assert delays == [0, 0, 0.5, 1, 2, 4, 4, 4, 4, 4]


async def test_a_repeated_failure_is_answered_late_without_holding_up_others(
    client: TestClient[Any, Any], make_user: UserFactory, settings: Settings
) -> None:
    email = (await make_user()).operator.email
    settings.login_failure_delay_seconds = 1.5  # the running app reads it per request
    for _ in range(2):
        assert (await login(client, email, WRONG)).status == 401
    started = time.monotonic()
    third = asyncio.create_task(login(client, email, WRONG))
    health = await client.get("/healthz")
    assert health.status == 200
    assert not third.done()  # /healthz was answered while the failure waited
    assert (await third).status == 401
    assert time.monotonic() - started >= 1.5


async def test_rows_of_ended_windows_are_purged(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    clock = ManualClock(START)
    with using(clock):
        for n in range(3):
            await login(client, f"gone{n}@example.com", WRONG, f"192.0.2.{n}")
        clock.advance(61)
        await login(client, "fresh@example.com", WRONG, "192.0.2.200")
    async with sessions() as session:
        keys = set(await session.scalars(select(LoginThrottle.key)))
        total = await session.scalar(select(func.count()).select_from(LoginThrottle))
    assert keys == {"fresh@example.com", "192.0.2.200"}
    assert total == 2


def _request(settings: Settings, remote: str, forwarded: str | None) -> web.Request:
    app = web.Application()
    app[SETTINGS] = settings
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return make_mocked_request("POST", "/api/v1/auth/login", headers=headers, app=app).clone(
        remote=remote
    )


def test_the_client_address_is_believed_only_from_trusted_proxies() -> None:
    direct = Settings(trusted_proxies=[])
    assert client_address(_request(direct, "192.0.2.1", "198.51.100.1")) == "192.0.2.1"
    proxied = Settings(trusted_proxies=["10.0.0.0/8"])
    # The proxy appends the address it saw; what the client wrote to the left is not believed.
    spoofed = _request(proxied, "10.1.2.3", "1.2.3.4, 198.51.100.1")
    assert client_address(spoofed) == "198.51.100.1"
    two_hops = _request(proxied, "10.1.2.3", "198.51.100.1, 10.9.9.9")
    assert client_address(two_hops) == "198.51.100.1"
    assert client_address(_request(proxied, "192.0.2.1", "198.51.100.1")) == "192.0.2.1"
    assert client_address(_request(proxied, "10.1.2.3", "garbage")) == "10.1.2.3"


def test_a_trusted_proxy_that_is_no_address_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"trusted_proxies.*'proxy\.local' is not an IP"):
        load_settings(trusted_proxies=["10.0.0.0/8", "proxy.local"])
    assert load_settings(trusted_proxies=[" 10.0.0.0/8 ", "::1"]).trusted_proxies == [
        "10.0.0.0/8",
        "::1",
    ]
