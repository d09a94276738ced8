"""Make the screenshots of docs/console.md, docs/admin.md and docs/reports.md (docs/img/*.png)
from the demo data.

    .venv/bin/python docs/make_screenshots.py                 # all of them
    .venv/bin/python docs/make_screenshots.py pipeline reports  # only these groups

Loads the demo into a throwaway SQLite database, serves the app on a free local port with its
background workers (routing included), and drives Debian's Chromium (/usr/bin/chromium, or
OMNICRM_CHROMIUM) headless with Playwright: the console as an operator at laptop and tablet
sizes, the monitor as a supervisor, each admin page as the admin. Nothing is fetched from the
internet. Run it again after a visible change to the console, the monitor or the admin pages
and commit the new PNGs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.audit import CLI
from core.canned import create_canned
from core.db import make_engine
from core.migrate import upgrade_sync
from core.models import Contact, Conversation, Operator, Presence, utcnow
from core.operators import set_presence
from core.settings import Settings
from web.app import create_app
from web.demo import DemoLogin, DemoServices, load_demo

OUT = Path(__file__).resolve().parent / "img"
CHROMIUM = os.environ.get("OMNICRM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP: ViewportSize = {"width": 1366, "height": 820}
TABLET: ViewportSize = {"width": 820, "height": 1100}
# The pipeline board: five columns side by side.
WIDE: ViewportSize = {"width": 1600, "height": 900}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def prepare(settings: Settings) -> dict[str, DemoLogin]:
    """The demo, plus what a working day has: people at their desks, a canned response."""
    engine = make_engine(settings.database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session, session.begin():
            result = await load_demo(session, DemoServices.for_settings(settings))
            await create_canned(
                session,
                CLI,
                title="Tracking link",
                shortcut="track",
                body="Hello {{contact.first_name}}, here is your tracking link: ",
                shared=True,
            )
            moods = {
                "anna@example.com": (Presence.AVAILABLE, None),
                "luis@example.com": (Presence.AWAY, "lunch"),
                "supervisor@example.com": (Presence.AVAILABLE, None),
            }
            for operator in await session.scalars(select(Operator)):
                presence, reason = moods.get(operator.email, (Presence.OFFLINE, None))
                await set_presence(session, operator, presence, reason, at=utcnow())
    finally:
        await engine.dispose()
    return {login.email: login for login in result.logins}


async def sign_in(
    browser: Browser, base: str, login: DemoLogin, path: str, size: ViewportSize
) -> Page:
    page = await browser.new_page(viewport=size, base_url=base)
    await page.goto(path)
    await page.get_by_label("Email").fill(login.email)
    await page.get_by_label("Password").fill(login.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{path}")
    await page.locator("body[data-ready=true]").wait_for()
    return page


async def jonas_email_conversation(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                select(Conversation.id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.display_name == "Jonas Weber", Conversation.channel == "email")
                .order_by(Conversation.id)
                .limit(1)
            )
    finally:
        await engine.dispose()
    if found is None:
        raise RuntimeError("the demo has no email conversation with Jonas Weber")
    return int(found)


ADMIN_SECTIONS = (
    "operators",
    "queues",
    "routing",
    "forms",
    "pipelines",
    "channels",
    "canned",
    "tokens",
    "audit",
)
# The groups of screenshots, as the command line names them.
GROUPS = ("console", "monitor", "admin", "pipeline", "reports")


async def admin_screenshot(page: Page, section: str) -> None:
    """One admin section (docs/admin.md); the queue editor open with an error beside a field."""
    await page.goto(f"/admin/#{section}")
    await page.reload()
    await page.locator("body[data-ready=true]").wait_for()
    if section == "queues":
        await (
            page.locator("#admin-main tr", has_text="Support")
            .get_by_role("button", name="Edit")
            .first.click()
        )
        await page.get_by_label("SLA: first response (minutes)").fill("0")
        await page.get_by_role("button", name="Save").click()
        await page.locator("[aria-invalid=true]").first.wait_for()
    await page.wait_for_timeout(300)
    # The audit log is long: its first screen says what it is.
    await page.screenshot(path=OUT / f"admin-{section}.png", full_page=section != "audit")


async def console_screenshots(
    browser: Browser, base: str, anna: DemoLogin, conversation_id: int
) -> list[str]:
    item = f'.inbox-item[data-conversation-id="{conversation_id}"]'
    page = await sign_in(browser, base, anna, "/console/", LAPTOP)
    await page.locator(item).first.click()
    await page.locator(".timeline .item").first.wait_for()
    await page.get_by_label("Reply to the customer").fill(
        "Hello Mr Weber, the carrier has confirmed: "
    )
    await page.wait_for_timeout(500)
    await page.screenshot(path=OUT / "console.png")
    await page.close()

    page = await sign_in(browser, base, anna, "/console/", TABLET)
    await page.locator(item).first.click()
    await page.locator(".timeline .item").first.wait_for()
    await page.keyboard.press("u")
    await page.wait_for_timeout(500)
    await page.screenshot(path=OUT / "console-tablet.png")
    await page.close()
    return ["console.png", "console-tablet.png"]


async def pipeline_screenshots(browser: Browser, base: str, tom: DemoLogin) -> list[str]:
    """The board as the sales supervisor sees it, then one lead's panel (docs/reports.md)."""
    page = await sign_in(browser, base, tom, "/pipeline/", WIDE)
    await page.locator(".lead-card").first.wait_for()
    await page.wait_for_timeout(300)
    await page.screenshot(path=OUT / "pipeline-board.png")
    # A lead with a conversation behind it: the panel shows the customer's history.
    await page.locator(".lead-card .card-open", has_text="Ethan Clarke").first.click()
    await page.locator("body[data-ready=true]").wait_for()
    await page.wait_for_timeout(800)
    await page.screenshot(path=OUT / "pipeline-lead.png")
    await page.close()
    return ["pipeline-board.png", "pipeline-lead.png"]


async def reports_screenshots(browser: Browser, base: str, tom: DemoLogin) -> list[str]:
    """Sales by owner over the last 90 days and volume per channel over the last 4 weeks."""
    today = utcnow().date()
    shots = (
        ("reports-sales.png", "sales_by_owner", today - timedelta(days=89), "day"),
        ("reports-volume.png", "volume", today - timedelta(days=27), "week"),
    )
    page = await sign_in(browser, base, tom, "/reports/", LAPTOP)
    for name, report, start, granularity in shots:
        hash_ = f"report={report}&start={start}&end={today}&granularity={granularity}"
        await page.goto(f"/reports/#{hash_}")
        await page.reload()
        await page.locator("body[data-ready=true]").wait_for()
        await page.locator("svg").first.wait_for()
        await page.wait_for_timeout(300)
        await page.screenshot(path=OUT / name)
    await page.close()
    return [name for name, *_ in shots]


async def main() -> None:
    wanted = set(sys.argv[1:]) or set(GROUPS)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown screenshot groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="omnicrm-screens-") as scratch:
        database_url = f"sqlite+aiosqlite:///{scratch}/demo.db"
        await asyncio.to_thread(upgrade_sync, database_url)
        settings = Settings(
            database_url=database_url,
            secret_key=secrets.token_hex(16),
            log_json=False,
            log_level="WARNING",
            attachments_dir=f"{scratch}/attachments",
        )
        logins = await prepare(settings)
        conversation_id = await jonas_email_conversation(database_url)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        OUT.mkdir(exist_ok=True)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                anna = logins["anna@example.com"]
                tom = logins["supervisor@example.com"]
                maria = logins["admin@example.com"]
                if "console" in wanted:
                    written += await console_screenshots(browser, base, anna, conversation_id)
                if "monitor" in wanted:
                    page = await sign_in(browser, base, tom, "/monitor/", LAPTOP)
                    await page.wait_for_timeout(500)
                    await page.screenshot(path=OUT / "monitor.png", full_page=True)
                    await page.close()
                    written.append("monitor.png")
                if "admin" in wanted:
                    page = await sign_in(browser, base, maria, "/admin/", LAPTOP)
                    for section in ADMIN_SECTIONS:
                        await admin_screenshot(page, section)
                        written.append(f"admin-{section}.png")
                    await page.close()
                if "pipeline" in wanted:
                    written += await pipeline_screenshots(browser, base, tom)
                if "reports" in wanted:
                    written += await reports_screenshots(browser, base, tom)
                await browser.close()
        finally:
            await runner.cleanup()
    for name in written:
        sys.stdout.write(f"wrote {OUT / name}\n")


if __name__ == "__main__":
    asyncio.run(main())
