"""Random bodies against the public and API routes: a clear 4xx, never a 5xx.

Hypothesis sends random JSON values, random form fields, random bytes and wrong content types.
Every answer must be below 500, every 4xx must carry the JSON error shape, and a rejected
request must leave the stored data as it was.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.forms import create_form
from core.models import AuthSession, Contact, Identity, Interaction, Lead, Role
from core.settings import Settings
from tests.conftest import User, UserFactory

Client = TestClient[Any, Any]
Send = Callable[..., Awaitable[ClientResponse]]

BOUNDARY = "fuzz-boundary-7f3a"
fuzz = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The form rate limit would answer 429 to most examples; here the bodies are the point.
    return settings.model_copy(update={"form_rate_limit_per_minute": 1_000_000})


# Mostly printable text; now and then with what the databases cannot store (NUL, lone
# surrogates) and other control characters.
clean_text = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40)
wild_text = st.text(
    st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e"])),
    max_size=40,
)
text = st.one_of(clean_text, clean_text, wild_text)
field_names = st.one_of(
    st.sampled_from(
        [
            "name",
            "email",
            "phone",
            "message",
            "submission_id",
            "website",
            "utm_source",
            "referrer",
            "external_id",
            "contact",
            "text",
            "html",
            "kind",
            "occurred_at",
            "meta",
            "queue",
            "password",
            "display_name",
            "language",
            "tags",
            "custom_fields",
            "owner_id",
        ]
    ),
    text,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinity included: Python's JSON writes and reads them
    text,
    st.emails(),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(field_names, json_values, max_size=8)
emails = st.one_of(st.emails(), text)
phones = st.one_of(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), text)


def with_extras(known: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies close to valid ones, so the deeper checks are reached, plus random fields."""
    extras = st.one_of(
        st.just({}), st.just({}), st.dictionaries(field_names, json_values, max_size=3)
    )
    return st.builds(lambda fields, more: {**more, **fields}, known, extras)


form_bodies = with_extras(
    st.fixed_dictionaries(
        {},
        optional={
            "name": text,
            "email": emails,
            "phone": phones,
            "message": st.one_of(text, st.lists(text, max_size=3)),
            "submission_id": st.one_of(st.sampled_from(["render-1", "render-2"]), text),
            "website": st.one_of(st.just(""), text),
            "utm_source": text,
            "referrer": text,
        },
    )
)
kinds = st.sampled_from(["message", "call", "form", "event"])
moments = st.datetimes().map(lambda moment: moment.isoformat() + "+00:00")
api_bodies = with_extras(
    st.fixed_dictionaries(
        {
            "external_id": st.one_of(st.sampled_from(["crm-1", "crm-2"]), text),
            "contact": st.fixed_dictionaries(
                {"email": emails}, optional={"phone": phones, "name": text, "external_id": text}
            ),
            "text": text,
        },
        optional={
            "html": text,
            "kind": st.one_of(kinds, kinds, text),
            "occurred_at": st.one_of(moments, moments, text),
            "meta": json_objects,
            "queue": text,
            "subject": text,
        },
    )
)
contact_changes = with_extras(
    st.fixed_dictionaries(
        {},
        optional={
            "display_name": text,
            "language": st.one_of(st.sampled_from(["en", "pt-BR"]), text),
            "tags": st.lists(text, max_size=3),
            "custom_fields": st.dictionaries(text, json_values, max_size=3),
            "priority_tier": text,
        },
    )
)
logins = with_extras(st.fixed_dictionaries({"email": emails, "password": text}))
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=unknown-8",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/x-www-form-urlencoded; charset=unknown-8",
        "multipart/form-data",
        "multipart/form-data; boundary=zz",
        "text/plain",
        "application/xml",
        "",
    ]
)


@st.composite
def requests(draw: st.DrawFn, objects: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments for one client request: a body and its content type."""
    shape = draw(
        st.sampled_from(["json", "json", "json", "json-any", "urlencoded", "multipart", "bytes"])
    )
    if shape == "json":
        return _json_body(draw(st.one_of(objects, objects, json_objects)))
    if shape == "json-any":
        return _json_body(draw(json_values))
    if shape == "urlencoded":
        pairs = _pairs(draw(objects))
        body = urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
        return {"data": body, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    if shape == "multipart":
        # Written by hand: names with quotes or line breaks make malformed parts on purpose.
        parts = [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in _pairs(draw(objects))
        ]
        body = ("".join(parts) + f"--{BOUNDARY}--\r\n").encode("utf-8", "surrogatepass")
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        return {"data": body, "headers": {"Content-Type": content_type}}
    body = draw(st.binary(max_size=300))
    return {"data": body, "headers": {"Content-Type": draw(content_types)}}


def _json_body(value: Any) -> dict[str, Any]:
    return {
        "data": json.dumps(value).encode("utf-8", "surrogatepass"),
        "headers": {"Content-Type": "application/json"},
    }


def _pairs(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Name-value pairs as a browser sends them; a list repeats the name, as checkboxes do."""
    return [
        (name, item if isinstance(item, str) else json.dumps(item))
        for name, value in fields.items()
        for item in (value if isinstance(value, list) else [value])
    ]


async def check_answer(response: ClientResponse) -> int:
    """The status, after checking it is not a 5xx and that a 4xx is a JSON error."""
    raw = await response.read()
    assert response.status < 500, raw[:500]
    if response.status >= 400:
        assert response.content_type == "application/json", raw[:200]
        error = json.loads(raw)["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert isinstance(error["fields"], dict)
    return response.status


async def snapshot(sessions: SessionFactory) -> tuple[Any, ...]:
    """What a rejected request must not change."""
    async with sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Interaction, Contact, Identity, Lead, AuthSession)
        ]
        contacts = (
            await session.execute(
                select(Contact.id, Contact.display_name, Contact.language, Contact.tags)
                .add_columns(Contact.custom_fields, Contact.owner_id, Contact.priority_tier)
                .order_by(Contact.id)
            )
        ).all()
    return (*counts, [tuple(row) for row in contacts])


async def fuzz_route(
    sessions: SessionFactory, send: Send, path: str, request: dict[str, Any]
) -> None:
    before = await snapshot(sessions)
    status = await check_answer(await send(path, allow_redirects=False, **request))
    event(f"status {status}")
    if status >= 400:
        assert await snapshot(sessions) == before


# Fixtures are made once per test and shared by its examples.


@pytest.fixture
async def form_slug(sessions: SessionFactory) -> str:
    async with sessions() as session, session.begin():
        form = await create_form(session, CLI, slug="fuzz", create_lead=True)
    return form.slug


@pytest.fixture
async def token(sessions: SessionFactory) -> str:
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "fuzz")
    return plain


@pytest.fixture
async def admin(make_user: UserFactory) -> User:
    return await make_user(Role.ADMIN)


@pytest.fixture
async def contact_id(sessions: SessionFactory) -> int:
    async with sessions() as session, session.begin():
        contact = Contact(display_name="Fuzz Target", custom_fields={"kept": "yes"})
        session.add(contact)
        await session.flush()
        return contact.id


def hostile(valid: dict[str, Any], field: str) -> Callable[[Any], Any]:
    """Explicit examples that random search may miss: what breaks parsers and databases.

    `field` (dotted for nested objects) of the otherwise valid body gets each bad value.
    """
    bodies = [
        b"[" * 100_000,  # deeper than Python's recursion limit
        b'{"a": 1' + b"1" * 5000 + b"}",  # more digits than Python converts
        b"\xff\xfe not UTF-8",
    ]
    *parents, leaf = field.split(".")
    for bad in ("nul \x00 inside", "lone \ud800 surrogate", float("nan")):
        spoiled = copy.deepcopy(valid)
        nested = spoiled
        for part in parents:
            nested = nested[part]
        nested[leaf] = bad
        bodies.append(json.dumps(spoiled).encode())

    def add_examples(test: Any) -> Any:
        for body in bodies:
            headers = {"Content-Type": "application/json"}
            test = example(request={"data": body, "headers": headers})(test)
        unknown_charset = {"Content-Type": "application/json; charset=unknown-8"}
        return example(request={"data": b"{}", "headers": unknown_charset})(test)

    return add_examples


@fuzz
@given(request=requests(form_bodies))
@hostile({"email": "a@example.com", "message": ""}, "message")
async def test_web_form_submissions(
    client: Client, sessions: SessionFactory, form_slug: str, request: dict[str, Any]
) -> None:
    await fuzz_route(sessions, client.post, f"/forms/{form_slug}", request)


@fuzz
@given(request=requests(api_bodies))
@hostile({"external_id": "x", "contact": {"email": "a@example.com"}, "text": ""}, "contact.name")
async def test_api_channel(
    client: Client, sessions: SessionFactory, token: str, request: dict[str, Any]
) -> None:
    headers = {**request.get("headers", {}), "Authorization": f"Bearer {token}"}
    await fuzz_route(sessions, client.post, "/api/v1/interactions", {**request, "headers": headers})


@fuzz
@given(request=requests(contact_changes))
@hostile({"display_name": ""}, "display_name")
@hostile({"custom_fields": {"note": ""}}, "custom_fields.note")
async def test_contact_changes(
    admin: User, sessions: SessionFactory, contact_id: int, request: dict[str, Any]
) -> None:
    await fuzz_route(sessions, admin.patch, f"/api/v1/contacts/{contact_id}", request)


@fuzz
@given(request=requests(logins))
@hostile({"email": "a@example.com", "password": "secret"}, "email")
async def test_login(client: Client, sessions: SessionFactory, request: dict[str, Any]) -> None:
    await fuzz_route(sessions, client.post, "/api/v1/auth/login", request)
