"""Signing in, in a real browser (Debian's Chromium): a foreign page cannot sign the browser
into another account, and `/login?next=` never sends anyone off the site."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Route

from tests.browser.conftest import Browsing
from tests.conftest import PASSWORD, UserFactory

ATTACKER = "attacker@example.com"


def auto_post(action: str, enctype: str, fields: list[tuple[str, str]]) -> web.Response:
    """A page that posts a hidden form to `action` as soon as it loads."""
    inputs = "".join(
        f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>"
        for name, value in fields
    )
    return web.Response(
        text="<!doctype html><body onload='document.forms[0].submit()'>"
        f"<form method='post' enctype='{enctype}' action='{escape(action)}'>{inputs}</form>",
        content_type="text/html",
    )


async def foreign_site(
    aiohttp_server: Callable[..., Awaitable[TestServer]], target: str
) -> TestServer:
    """Another origin (a port of its own) whose pages try to sign a visitor in to `target`
    as the attacker."""
    login = f"{target}/api/v1/auth/login"

    async def text_plain(_: web.Request) -> web.Response:
        # A text/plain form sends `name=value`: this name and value make a JSON body.
        opening = f'{{"email": "{ATTACKER}", "password": "{PASSWORD}", "x": "'
        return auto_post(login, "text/plain", [(opening, '"}')])

    async def urlencoded(_: web.Request) -> web.Response:
        fields = [("email", ATTACKER), ("password", PASSWORD)]
        return auto_post(login, "application/x-www-form-urlencoded", fields)

    app = web.Application()
    app.router.add_get("/text", text_plain)
    app.router.add_get("/form", urlencoded)
    return await aiohttp_server(app)


async def test_a_foreign_page_cannot_sign_the_browser_in(
    browsing: Browsing,
    make_user: UserFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    await make_user("operator", email=ATTACKER)
    evil = await foreign_site(aiohttp_server, browsing.base_url)
    assert urlsplit(str(evil.make_url("/"))).netloc != urlsplit(browsing.base_url).netloc
    page = await browsing.page()
    for path in ("/text", "/form"):
        async with page.expect_navigation(url=f"{browsing.base_url}/api/v1/auth/login"):
            await page.goto(str(evil.make_url(path)))
        cookies = await browsing.context.cookies(browsing.base_url)
        assert "omnicrm_session" not in {cookie["name"] for cookie in cookies}, path
        me = await page.goto(f"{browsing.base_url}/api/v1/auth/me")
        assert me is not None
        assert me.status == 401, (path, await me.text())


NEXT_OFF_SITE = [
    "/%09/evil.example",
    "/%0a/evil.example",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example",
    "%20//evil.example",
    "javascript:alert(document.domain)",
]


async def test_after_signing_in_next_never_leaves_the_site(
    browsing: Browsing, make_user: UserFactory
) -> None:
    admin = await make_user("admin")
    visited_evil: list[str] = []

    async def evil(route: Route) -> None:
        visited_evil.append(route.request.url)
        await route.fulfill(body="<h1>evil</h1>", content_type="text/html")

    await browsing.context.route(lambda url: urlsplit(url).hostname == "evil.example", evil)
    page = await browsing.page()
    own = urlsplit(browsing.base_url).netloc

    async def sign_in_with(next_value: str) -> str:
        await page.goto(f"/login?next={next_value}")
        await page.get_by_label("Email").fill(admin.operator.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(lambda url: urlsplit(url).path != "/login")
        return page.url

    for next_value in NEXT_OFF_SITE:
        landed = await sign_in_with(next_value)
        assert urlsplit(landed).netloc == own, (next_value, landed)
        assert urlsplit(landed).path == "/console/", (next_value, landed)
    # A path that normalizes to "//evil.example" is still a path on this site.
    landed = await sign_in_with("/.//evil.example")
    assert urlsplit(landed).netloc == own, landed
    assert visited_evil == []
    # A page of this site is where signing in leads, with its query and fragment.
    landed = await sign_in_with("/monitor/%3Fqueue%3D1%23top")
    assert landed == f"{browsing.base_url}/monitor/?queue=1#top"
