"""The REST API's plumbing: one decorator declares a route's roles, body and docs.

Policy lives here once: authentication (session cookie with CSRF, or bearer token), the role
check, body parsing into a pydantic model, JSON serialization, and the OpenAPI description.
Handlers receive a `Call` and return data.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from core import auth
from core.audit import Actor
from core.db import SessionFactory
from core.errors import Forbidden, InvalidInput, NotFound, validation_fields
from core.models import Role
from core.pagination import DEFAULT_LIMIT, MAX_ID, MAX_LIMIT
from core.preferences import known_time_zone
from core.settings import Settings
from core.validation import check_storable
from web.keys import SESSIONS, SETTINGS

SESSION_COOKIE = "omnicrm_session"
CSRF_COOKIE = "omnicrm_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Who may call a route; each role includes the ones before it, except integration tokens.
ANYONE_SIGNED_IN = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})
SUPERVISORS = frozenset({Role.SUPERVISOR, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})
PUBLIC: frozenset[Role] = frozenset()

BodyT = TypeVar("BodyT", bound=BaseModel)
QueryT = TypeVar("QueryT", bound=BaseModel)


class NoBody(BaseModel):
    pass


# A record id in a body or query: positive and within a 64-bit column, so a huge number is a
# 400 instead of a database error.
RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _time_zone(value: str | None) -> str | None:
    return None if value in (None, "") else known_time_zone(str(value))


# An IANA time zone name in a body or query (empty: none given).
TimeZoneName = Annotated[str | None, Field(max_length=64), AfterValidator(_time_zone)]

# Path parameters that name a record or a position: `id`, `<thing>_id`, `index`.
_ID_PARAM = re.compile(r"id|[a-z_]+_id|index")
PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# ASCII digits only: str.isdigit() and int() also take other scripts' digits ("\u0663" is 3),
# superscripts and full-width forms, which would alias real ids or fail in int().
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def id_params(path: str) -> tuple[str, ...]:
    """The parameters of a route path that are record ids or positions (see `path_id`)."""
    return tuple(name for name in PATH_PARAM.findall(path) if _ID_PARAM.fullmatch(name))


def path_id(raw: str) -> int:
    """The number a path segment names, or NotFound (a 404 with the JSON error body).

    The one rule for ids in paths: ASCII digits `[0-9]+` whose value fits an id column
    (at most MAX_ID). Signs, spaces, other scripts' digits, huge numbers: no such record.
    """
    if _ASCII_DIGITS.fullmatch(raw) is None or int(raw) > MAX_ID:
        raise NotFound("no such record")
    return int(raw)


class PageQuery(BaseModel):
    """Query parameters of a cursor-paginated list."""

    model_config = ConfigDict(extra="forbid")

    cursor: str | None = Field(
        default=None, max_length=500, description="next_cursor of the previous page"
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


@dataclass
class Call(Generic[BodyT, QueryT]):
    """One API request, authenticated and parsed."""

    request: web.Request
    actor: Actor
    body: BodyT
    query: QueryT
    auth_session_id: int | None = None
    # What the route's `guard` returned (the website chat's visitor), else None.
    guarded: Any = None

    @property
    def sessions(self) -> SessionFactory:
        return self.request.app[SESSIONS]

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    def path_int(self, name: str) -> int:
        """The id or index in the path parameter `name` (see `path_id`)."""
        return path_id(self.request.match_info[name])


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]
# A public route's own authentication (a website visitor's token): runs on the raw request
# before the body is parsed; raises an ApiError-like exception (401/403) or returns who it is.
Guard = Callable[[web.Request], Awaitable[Any]]


# Error answers a route may declare with `errors=`, beyond those its declaration implies
# (see `RouteDoc.error_statuses`), and what each means.
ERROR_STATUSES: Mapping[int, str] = {
    400: "invalid request: the message says what, `fields` names each field at fault",
    401: "not signed in (or wrong credentials)",
    403: "the caller's role may not do this, or the X-CSRF-Token header is missing or wrong",
    404: "no such record (an id in the path is ASCII digits, else it is no record either)",
    409: "conflicts with the record's current state; the message says how",
    413: "the request body is larger than max_body_bytes",
    415: "unsupported Content-Type",
    429: "too many requests; wait for Retry-After seconds",
    503: "a system omnicrm depends on (the ERP) cannot answer now; the message says which",
}


@dataclass(frozen=True)
class RouteDoc:
    method: str
    path: str
    summary: str
    roles: frozenset[Role]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    tag: str
    errors: frozenset[int] = frozenset()
    # Other statuses answered with the response model, e.g. /healthz's 503.
    also: frozenset[int] = frozenset()

    @property
    def error_statuses(self) -> list[int]:
        """Every error status the route can answer, with the JSON error body.

        Implied by the declaration: 401 and 403 when it needs a role; 400 when it takes a
        body or query; 413 with a body; 404 when the path has parameters. The rest (409 from
        a `Conflict`, 429, 415, a public route's own 401/403) the route declares in `errors`.
        """
        statuses = set(self.errors)
        if self.roles:
            statuses |= {401, 403}
        if self.body is not None or self.query is not None:
            statuses.add(400)
        if self.body is not None:
            statuses.add(413)
        if PATH_PARAM.search(self.path):
            statuses.add(404)
        return sorted(statuses)


@dataclass
class ApiRoutes:
    """Collects routes with their documentation; `web.app` adds them to the application."""

    tag: str
    docs: list[RouteDoc] = field(default_factory=list)
    table: web.RouteTableDef = field(default_factory=web.RouteTableDef)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        roles: Iterable[Role] = ANYONE_SIGNED_IN,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        documented_body: type[BaseModel] | None = None,
        errors: Iterable[int] = (),
        also: Iterable[int] = (),
        guard: Guard | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare a route. `guard` authenticates a public route's caller its own way (on the
        raw request, before the body is parsed; `call.guarded` is what it returned);
        `documented_body` documents a body the handler parses itself;
        `errors` lists the error statuses its handler can answer beyond those the rest of the
        declaration implies (e.g. 409 where core raises `Conflict`); `also` lists statuses
        answered with the `response` model besides `status`."""
        allowed = frozenset(roles)
        declared = frozenset(errors)
        unknown = declared - set(ERROR_STATUSES)
        if unknown:
            raise ValueError(f"{method} {path}: no such error status {sorted(unknown)}")
        self.docs.append(
            RouteDoc(
                method,
                path,
                summary,
                allowed,
                body or documented_body,
                query,
                response,
                status,
                self.tag,
                declared,
                frozenset(also),
            )
        )

        ids = id_params(path)

        def register(handler: Handler) -> Handler:
            async def endpoint(request: web.Request) -> web.StreamResponse:
                actor, session_id = await authenticate(request, allowed)
                # Checked before the handler runs, whether or not it reads them: a route
                # never sees an id that is not one.
                for name in ids:
                    path_id(request.match_info[name])
                guarded = await guard(request) if guard is not None else None
                call = Call(
                    request,
                    actor,
                    await parse_body(request, body or NoBody),
                    parse_query(request, query or NoBody),
                    session_id,
                    guarded,
                )
                result = await handler(call)
                if isinstance(result, web.StreamResponse):
                    return result
                return json_response(result, status=status)

            self.table.route(method, path)(endpoint)
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kwargs)


def error_body(code: str, message: str, fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": dict(fields or {})}}


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    if status == 204:
        return web.Response(status=204)
    return web.json_response(to_jsonable(data), status=status)


async def parse_body(request: web.Request, model: type[BodyT]) -> BodyT:
    """Parse a JSON body (or form fields) into `model`; 400 with per-field messages if bad."""
    if model is NoBody:
        return model()
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            raw: Any = dict(await request.post())
        except (HttpProcessingError, ValueError, LookupError):
            # Malformed multipart, undecodable text or an unknown charset.
            raise InvalidInput("the form data could not be read") from None
    else:
        try:
            text = await request.text()
            raw = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"body is not valid JSON: {exc.msg}") from None
        except (UnicodeDecodeError, LookupError):
            raise InvalidInput("body is not valid UTF-8") from None
        except (ValueError, RecursionError):
            # Numbers past Python's digit limit and absurdly deep nesting.
            raise InvalidInput("body is not valid JSON: too large a number or too deep") from None
    if not isinstance(raw, dict):
        raise InvalidInput("body must be a JSON object")
    return validate(model, raw)


def parse_query(request: web.Request, model: type[QueryT]) -> QueryT:
    if model is NoBody:
        return model()
    return validate(model, dict(request.query))


def validate(model: type[BodyT], raw: dict[str, Any]) -> BodyT:
    """Check a body or query against `model`; text the databases cannot store is a 400 too."""
    for name, value in raw.items():
        check_storable(name, "body")
        check_storable(value, str(name))
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> InvalidInput:
    error = InvalidInput("the request has invalid fields")
    error.fields = validation_fields(exc, "body")
    return error


async def authenticate(request: web.Request, allowed: frozenset[Role]) -> tuple[Actor, int | None]:
    """The caller and its session id; 401 if not signed in, 403 if the role is not allowed."""
    if not allowed:
        return Actor(f"anonymous:{request.remote}", Role.OPERATOR), None
    actor, session_id = await identify(request)
    if actor is None:
        raise web.HTTPUnauthorized(
            text=json.dumps(error_body("unauthorized", "sign in or send a bearer token")),
            content_type="application/json",
        )
    if actor.role not in allowed:
        raise Forbidden(f"the {actor.role} role may not do this")
    return actor, session_id


async def identify(request: web.Request) -> tuple[Actor | None, int | None]:
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization", "")
    async with request.app[SESSIONS]() as session:
        if header.startswith("Bearer "):
            return await auth.token_actor(session, header.removeprefix("Bearer ").strip()), None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None, None
        found = await auth.session_operator(session, cookie, settings.secret_key)
    if found is None:
        return None, None
    operator, auth_session = found
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), auth_session.csrf_token.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
    return auth.actor_of(operator), auth_session.id
