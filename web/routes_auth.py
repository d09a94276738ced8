"""Sign in and out of the console; change one's password.

Signing in takes JSON only, from the server's own pages (or `allowed_origins`) or from
clients that send no Origin: a foreign page can neither post a form nor a text/plain body
that signs a browser into someone else's account. Failed attempts are throttled per account
and per client address (`core.login_throttle`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core import audit, auth, login_throttle
from core.errors import Forbidden
from core.models import Operator
from core.preferences import Preferences, preferences_of, update_preferences
from web.api import (
    CSRF_COOKIE,
    PUBLIC,
    SESSION_COOKIE,
    ApiRoutes,
    Call,
    NoBody,
    error_body,
    parse_body,
)
from web.origins import client_address, origin_allowed
from web.schemas import OperatorOut

routes = ApiRoutes(tag="auth")


class LoginBody(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class LoginOut(BaseModel):
    operator: OperatorOut
    csrf_token: str


class PasswordBody(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(min_length=auth.MIN_PASSWORD, max_length=1000)


@routes.post(
    "/api/v1/auth/login",
    summary="Sign in (JSON only); sets the session cookie and returns the CSRF token",
    roles=PUBLIC,
    documented_body=LoginBody,
    response=LoginOut,
    # Wrong credentials; a foreign Origin; not JSON; throttled.
    errors=(401, 403, 415, 429),
)
async def login(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    settings = call.settings
    request = call.request
    if not origin_allowed(request):
        raise Forbidden("sign-in is allowed only from this server's own pages")
    if request.content_type != "application/json":
        return web.json_response(
            error_body("unsupported_media_type", "send the credentials as application/json"),
            status=415,
        )
    body = await parse_body(request, LoginBody)
    outcome = await auth.sign_in(
        call.sessions,
        body.email,
        body.password,
        address=client_address(request),
        policy=login_throttle.Policy.from_settings(settings),
        secret_key=settings.secret_key,
        ttl=timedelta(hours=settings.session_ttl_hours),
    )
    if outcome.retry_after is not None:
        seconds = outcome.retry_after
        return web.json_response(
            error_body(
                "rate_limited", f"too many sign-in attempts; try again in {seconds} seconds"
            ),
            status=429,
            headers={"Retry-After": str(seconds)},
        )
    opened = outcome.opened
    if opened is None:
        # Repeated failures are answered ever later; other requests go on meanwhile.
        await asyncio.sleep(outcome.delay)
        return web.json_response(
            error_body("invalid_credentials", "wrong email or password"), status=401
        )
    response = web.json_response(
        LoginOut(
            operator=OperatorOut.model_validate(opened.operator), csrf_token=opened.csrf_token
        ).model_dump(mode="json")
    )
    max_age = int(settings.session_ttl_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie_value,
        httponly=True,
        samesite="Strict",
        secure=settings.secure_cookies,
        max_age=max_age,
        path="/",
    )
    # Readable by the console's scripts, which echo it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE,
        opened.csrf_token,
        samesite="Strict",
        secure=settings.secure_cookies,
        max_age=max_age,
        path="/",
    )
    return response


@routes.post("/api/v1/auth/logout", summary="Sign out of this session", status=204)
async def logout(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    if call.auth_session_id is not None:
        async with call.sessions() as session, session.begin():
            await auth.revoke_session(session, call.auth_session_id)
            await audit.record(session, call.actor, "logout", "operator", call.actor.operator_id)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


@routes.get("/api/v1/auth/me", summary="The signed-in operator", response=OperatorOut)
async def me(call: Call[NoBody, NoBody]) -> OperatorOut:
    async with call.sessions() as session:
        operator = await session.get(Operator, call.actor.operator_id or 0)
    if operator is None:
        raise web.HTTPUnauthorized()
    return OperatorOut.model_validate(operator)


class PreferencesBody(BaseModel):
    """Only the keys given change; an unknown key is a 400, never dropped quietly."""

    model_config = ConfigDict(extra="forbid")

    locale: str | None = None
    time_zone: str | None = None
    desktop_notifications: bool | None = None
    sound: bool | None = None
    title_count: bool | None = None
    voice_device: str | None = Field(
        default=None, description='the phone calls ring on: +E.164 or sip:user@host; "": none'
    )


@routes.get(
    "/api/v1/auth/me/preferences",
    summary="The signed-in operator's language, time zone and notification choices",
    response=Preferences,
)
async def my_preferences(call: Call[NoBody, NoBody]) -> Preferences:
    async with call.sessions() as session:
        operator = await session.get(Operator, call.actor.operator_id or 0)
    if operator is None:
        raise web.HTTPUnauthorized()
    return preferences_of(operator)


@routes.patch(
    "/api/v1/auth/me/preferences",
    summary="Change one's own preferences (only the keys given)",
    body=PreferencesBody,
    response=Preferences,
)
async def change_my_preferences(call: Call[PreferencesBody, NoBody]) -> Preferences:
    async with call.sessions() as session, session.begin():
        operator = await session.get(Operator, call.actor.operator_id or 0)
        if operator is None:
            raise web.HTTPUnauthorized()
        return await update_preferences(
            session, call.actor, operator, call.body.model_dump(exclude_none=True)
        )


@routes.post(
    "/api/v1/auth/password",
    summary="Change one's own password; signs out every session",
    body=PasswordBody,
    status=204,
    errors=(409,),
)
async def change_password(call: Call[PasswordBody, NoBody]) -> web.StreamResponse:
    if call.actor.operator_id is None:
        raise web.HTTPUnauthorized()
    await auth.change_password(
        call.sessions, call.actor.operator_id, call.body.current_password, call.body.new_password
    )
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response
