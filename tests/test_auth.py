"""Signing in and out, sessions, CSRF, roles."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, Role
from tests.conftest import PASSWORD, UserFactory


async def test_login_sets_httponly_strict_cookie_and_returns_csrf(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.operator.email, "password": PASSWORD}
    )
    assert response.status == 200
    cookie = response.cookies["omnicrm_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert (await response.json())["csrf_token"]
    me = await client.get("/api/v1/auth/me")
    assert (await me.json())["email"] == user.operator.email


async def test_wrong_password_is_401_and_audited(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.operator.email, "password": "wrong one!!"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_credentials"
    assert "omnicrm_session" not in response.cookies
    async with sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "login.failed" in actions


async def test_api_without_auth_is_401_json(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_unsafe_request_without_csrf_header_is_403(make_user: UserFactory) -> None:
    user = await make_user(Role.OPERATOR)
    response = await user.client.post("/api/v1/auth/logout")
    assert response.status == 403
    assert "X-CSRF-Token" in (await response.json())["error"]["message"]
    still_in = await user.get("/api/v1/auth/me")
    assert still_in.status == 200


async def test_logout_revokes_the_session(make_user: UserFactory) -> None:
    user = await make_user(Role.OPERATOR)
    cookie = user.client.session.cookie_jar.filter_cookies(user.client.make_url("/"))[
        "omnicrm_session"
    ].value
    assert (await user.post("/api/v1/auth/logout")).status == 204
    replay = await user.client.get("/api/v1/auth/me", cookies={"omnicrm_session": cookie})
    assert replay.status == 401


async def test_password_change_revokes_every_session(
    make_user: UserFactory, client: TestClient[Any, Any]
) -> None:
    user = await make_user(Role.OPERATOR)
    other_device = await client.post(
        "/api/v1/auth/login", json={"email": user.operator.email, "password": PASSWORD}
    )
    assert other_device.status == 200
    response = await user.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
    )
    assert response.status == 204
    assert (await client.get("/api/v1/auth/me")).status == 401
    old = await client.post(
        "/api/v1/auth/login", json={"email": user.operator.email, "password": PASSWORD}
    )
    assert old.status == 401
    new = await client.post(
        "/api/v1/auth/login",
        json={"email": user.operator.email, "password": "a brand new secret"},
    )
    assert new.status == 200
