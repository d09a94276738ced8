"""Path parameters from outside: ids are ASCII digits or a 404, static files are served from
web/static only, and no path parameter of any route makes the server answer 5xx.

The routes come from the application's router, so a route added later is covered without
touching this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.db import SessionFactory
from core.errors import NotFound
from core.models import Contact, Role
from core.pagination import MAX_ID
from tests.conftest import User, UserFactory
from web.api import CSRF_HEADER, PATH_PARAM, path_id
from web.openapi import ROUTE_DOCS, build_document

Client = TestClient[Any, Any]


@dataclass(frozen=True)
class Route:
    method: str
    canonical: str
    params: tuple[str, ...]

    def url(self, values: dict[str, str]) -> str:
        """The route's path with each parameter as one percent-encoded segment."""
        return PATH_PARAM.sub(
            lambda match: quote(values[match.group(1)], safe="", errors="surrogatepass"),
            self.canonical,
        )


def routes_with_parameters(app: web.Application) -> list[Route]:
    found = {
        Route(
            "GET" if route.method == "*" else route.method,
            route.resource.canonical,
            tuple(PATH_PARAM.findall(route.resource.canonical)),
        )
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    return sorted((route for route in found if route.params), key=lambda r: (r.canonical, r.method))


# What broke parsers before: other scripts' digits (some alias real ids, some fail in int()),
# signs, spaces, numbers past the id range and past Python's digit limit, NUL, separators,
# traversal, percent signs, emoji, lone surrogates.
HOSTILE = [
    "\u00b9",  # superscript one: str.isdigit() says yes, int() says no
    "\u0661",  # Arabic-Indic one: int() reads 1
    "\uff11",  # full-width one
    "\U0001d7cf",  # mathematical bold one
    "0",
    "007",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1\n",
    "1.0",
    "1e3",
    "0x10",
    str(MAX_ID),
    str(MAX_ID + 1),
    "9" * 25,
    "9" * 5000,
    "\x00",
    "a\x00.png",
    "common/base.css\x00.png",
    "%",
    "%00",
    "%2e%2e",
    "..",
    ".",
    "../../pyproject.toml",
    "..\\..\\pyproject.toml",
    "common/../../../docs/img/console.png",
    "/etc/passwd",
    "a" * 300 + ".png",
    "\U0001f600",
    "\ud800",
    "\u202e",
]
SEGMENTS = ["common", "..", ".", "", "base.css", "x.png", "\x00"]
values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.from_regex(r"[0-9]{1,25}", fullmatch=True),
    st.lists(st.sampled_from(SEGMENTS), max_size=5).map("/".join),
)

fuzz = hypothesis_settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def admin(make_user: UserFactory) -> User:
    return await make_user(Role.ADMIN)


@pytest.fixture
def documented(app: web.Application) -> dict[tuple[str, str], set[int]]:
    """The statuses the OpenAPI document lists for each operation."""
    document = build_document(app[ROUTE_DOCS])
    return {
        (method.upper(), path): {int(status) for status in operation["responses"]}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


async def check(
    client: Client,
    route: Route,
    url: str,
    documented: dict[tuple[str, str], set[int]],
    headers: dict[str, str] | None = None,
) -> int:
    """No 5xx; an error is the JSON error body; the status is one the document lists."""
    kwargs: dict[str, Any] = {"headers": headers or {}, "allow_redirects": False}
    if route.method not in ("GET", "DELETE"):
        kwargs["json"] = {}
    response = await client.request(route.method, url, **kwargs)
    raw = await response.read()
    where = f"{route.method} {url[:120]}"
    assert response.status < 500, f"{where}: {response.status} {raw[:300]!r}"
    if response.status >= 400:
        assert response.content_type == "application/json", where
        error = json.loads(raw)["error"]
        assert isinstance(error["code"], str), where
        assert error["message"], where
        assert isinstance(error["fields"], dict), where
        listed = documented.get((route.method, route.canonical))
        if listed is not None:
            assert response.status in listed, f"{where}: {response.status} not in {listed}"
    return response.status


@fuzz
@given(data=st.data())
@example(data=None)
async def test_no_path_parameter_of_any_route_gives_a_5xx(
    app: web.Application,
    client: Client,
    admin: User,
    documented: dict[tuple[str, str], set[int]],
    data: st.DataObject | None,
) -> None:
    routes = routes_with_parameters(app)
    assert len(routes) > 30, "the router lists the app's routes"
    if data is None:
        # The explicit example: every hostile value in each parameter of every route (the
        # others "1", so a URL stays within the server's request-line limit).
        cases = [
            (route, {**dict.fromkeys(route.params, "1"), name: bad})
            for route in routes
            for name in route.params
            for bad in HOSTILE
        ]
    else:
        route = data.draw(st.sampled_from(routes))
        cases = [(route, {name: data.draw(values) for name in route.params})]
    for route, filled in cases:
        url = route.url(filled)
        await check(client, route, url, documented)
        await check(admin.client, route, url, documented, {CSRF_HEADER: admin.csrf_token})


@pytest.mark.parametrize(
    "raw",
    ["\u00b9", "\u0661", "\uff11", "1\n", " 1", "+1", "-1", "1.0", str(MAX_ID + 1), "9" * 5000],
)
def test_path_id_takes_ascii_digits_within_the_id_range_only(raw: str) -> None:
    with pytest.raises(NotFound):
        path_id(raw)


def test_path_id_reads_ascii_digits() -> None:
    assert (path_id("1"), path_id("0042"), path_id(str(MAX_ID))) == (1, 42, MAX_ID)


@pytest.mark.parametrize("raw", ["%C2%B9", "%EF%BC%91", "%F0%9D%9F%8F", "9999999999999999999999"])
async def test_a_non_ascii_or_huge_id_is_a_json_404(admin: User, raw: str) -> None:
    for path in (f"/api/v1/contacts/{raw}", f"/api/v1/interactions/1/attachments/{raw}"):
        response = await admin.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"


async def test_another_scripts_digits_do_not_alias_a_real_id(
    admin: User, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        contact = Contact(display_name="Kim")
        session.add(contact)
        await session.flush()
        contact_id = contact.id
    assert (await admin.get(f"/api/v1/contacts/{contact_id}")).status == 200
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in str(contact_id))
    response = await admin.get(f"/api/v1/contacts/{quote(arabic_indic)}")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/static/a%00.png",
        "/static/common/base.css%00.png",
        "/static/" + "a" * 300 + ".png",
        "/static/" + "/".join(["a" * 200] * 30) + ".png",
        "/static/..%2F..%2Fdocs%2Fimg%2Fconsole.png",
        "/static/common%2F..%2F..%2F..%2Fdocs%2Fimg%2Fconsole.png",
        "/static/common%5C..%5C..%5C..%5Cdocs%5Cimg%5Cconsole.png",
        "/static/console/index.html",
        "/static/common",
    ],
)
async def test_a_static_path_the_files_cannot_answer_is_a_clean_404(
    client: Client, path: str
) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_static_files_are_still_served(client: Client) -> None:
    response = await client.get("/static/common/base.css")
    assert response.status == 200
    assert response.content_type == "text/css"
