"""Sign in and out of the console; change one's password."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from core import audit, auth
from core.models import Operator
from web.api import CSRF_COOKIE, PUBLIC, SESSION_COOKIE, ApiRoutes, Call, NoBody, error_body
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
    summary="Sign in; sets the session cookie and returns the CSRF token",
    roles=PUBLIC,
    body=LoginBody,
    response=LoginOut,
)
async def login(call: Call[LoginBody, NoBody]) -> web.StreamResponse:
    settings = call.settings
    async with call.sessions() as session, session.begin():
        operator = await auth.authenticate(session, call.body.email, call.body.password)
        if operator is None:
            await audit.record(
                session, call.actor, "login.failed", "operator", None, {"email": call.body.email}
            )
        else:
            opened = await auth.open_session(
                session, operator, settings.secret_key, timedelta(hours=settings.session_ttl_hours)
            )
    if operator is None:
        return web.json_response(
            error_body("invalid_credentials", "wrong email or password"), status=401
        )
    response = web.json_response(
        LoginOut(
            operator=OperatorOut.model_validate(operator), csrf_token=opened.csrf_token
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


@routes.post(
    "/api/v1/auth/password",
    summary="Change one's own password; signs out every session",
    body=PasswordBody,
    status=204,
)
async def change_password(call: Call[PasswordBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        operator = await session.get(Operator, call.actor.operator_id or 0)
        if operator is None:
            raise web.HTTPUnauthorized()
        await auth.change_password(
            session, operator, call.body.current_password, call.body.new_password
        )
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response
