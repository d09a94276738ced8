"""Fixtures for the browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright.

Playwright's Python package brings its driver; no browser is ever downloaded. The browser runs
headless inside the suite's event loop against the app the root fixtures serve, here with the
background workers on (routing engine, outbox worker), since the console lives on them.
Screenshots land in test-artifacts/ (kept out of git).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from core.settings import Settings
from tests.conftest import PASSWORD, User, UserFactory
from web.app import create_app

CHROMIUM = Path(os.environ.get("OMNICRM_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAPTOP: ViewportSize = {"width": 1366, "height": 820}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without Chromium the tests that need it are skipped with the reason, except under
    CI=true (where .ci/run installs it), so there they fail."""
    if CHROMIUM.exists() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> web.Application:
    """The app as `omnicrm serve` runs it: routing engine and outbox worker included."""
    return create_app(settings, background_workers=True)


@pytest.fixture
async def browser(
    server: TestServer, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[Browser]:
    """Chromium, closed before the test server stops: the server waits for open connections
    (the console's websocket) when it stops, and closing a test client stops it."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Watch:
    """What a page did besides what the test asked: script errors and failed console calls."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)


@dataclass
class Browsing:
    """A browser context on the test server; `page()` opens a watched tab."""

    context: BrowserContext
    base_url: str
    watches: list[Watch] = field(default_factory=list)

    async def page(self) -> Page:
        page = await self.context.new_page()
        watch = Watch()
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("console", watch.on_console)
        self.watches.append(watch)
        return page


@pytest.fixture
async def browsing(browser: Browser, server: TestServer) -> AsyncIterator[Browsing]:
    """A fresh browser profile (no cookies) on the test server, at laptop size.

    At the end, no page may have thrown an uncaught script error."""
    base_url = str(server.make_url("")).rstrip("/")
    context = await browser.new_context(base_url=base_url, viewport=LAPTOP)
    context.set_default_timeout(10_000)
    browsing = Browsing(context, base_url)
    try:
        yield browsing
    finally:
        await context.close()
    errors = [error for watch in browsing.watches for error in watch.page_errors]
    assert not errors, f"uncaught script errors: {errors}"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


async def open_as(browsing: Browsing, user: User, path: str = "/console/") -> Page:
    """A page at `path` signed in with `user`'s session (their API client's cookies), for
    tests about what comes after signing in."""
    cookies = user.client.session.cookie_jar.filter_cookies(URL(browsing.base_url))
    await browsing.context.add_cookies(
        [
            {"name": name, "value": morsel.value, "url": browsing.base_url}
            for name, morsel in cookies.items()
        ]
    )
    page = await browsing.page()
    await page.goto(path)
    await page.locator("body[data-ready=true]").wait_for()
    return page


async def sign_in(page: Page, email: str, path: str = "/console/") -> None:
    """Open `path`, be sent to the sign-in page, sign in, and wait for the page to be ready."""
    await page.goto(path)
    await page.wait_for_url(re.compile(r"/login\?next="))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{path}")
    await page.locator("body[data-ready=true]").wait_for()


_UNNAMED_CONTROL = re.compile(
    r"^\s*- (button|checkbox|combobox|link|radio|searchbox|slider|spinbutton|textbox)\b(?! \")",
    re.MULTILINE,
)


async def assert_controls_labelled(page: Page) -> None:
    """Every control a keyboard or screen-reader user can reach has an accessible name."""
    tree = await page.locator("body").aria_snapshot()
    unnamed = [match.group(0).strip() for match in _UNNAMED_CONTROL.finditer(tree)]
    assert not unnamed, f"controls without a name: {unnamed}\n{tree}"


@dataclass
class SupportTeam:
    """Maria, an admin; Anna, an operator of the Support queue with room for chats."""

    admin: User
    operator: User
    queue_id: int


async def support_team(make_user: UserFactory) -> SupportTeam:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    operator = await make_user("operator", email="anna@example.com", name="Anna Novak")
    response = await admin.post("/api/v1/queues", json={"name": "Support"})
    assert response.status == 201, await response.text()
    queue_id = int((await response.json())["id"])
    members = await admin.put(
        f"/api/v1/queues/{queue_id}/members", json={"operator_ids": [operator.operator.id]}
    )
    assert members.status == 200, await members.text()
    room = await admin.patch(
        f"/api/v1/operators/{operator.operator.id}", json={"capacity": {"messaging": 5}}
    )
    assert room.status == 200, await room.text()
    return SupportTeam(admin, operator, queue_id)
