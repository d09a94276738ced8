"""The reports page in a real browser (Debian's Chromium), over the known history of
tests/test_reports.py (Berlin, around 2 to 15 March 2026), the clock on Sunday 15 March at noon
in Berlin, the supervisor's time zone.

A supervisor opens /reports/ (the volume of the last 7 days by default), chooses "Sales by
owner" over the last 30 days and reads each owner's figures; a lead moved to won through the
API shows in its owner's won count and value after a reload; the funnel draws its stages; the
volume per day, stacked by channel, filtered by a queue has fewer rows and the hash keeps the
filter across a reload; a period that ends before it starts is refused next to the field; the
CSV export downloads the table; a weekly email of the report is set up and deleted; an operator
gets the 403 page. Screenshots: test-artifacts/reports-sales.png, reports-volume.png (they are
in docs/reports.md).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import select

from core.clock import ManualClock, using
from core.db import SessionFactory
from core.models import ChannelAccount, Lead
from tests.browser.conftest import LAPTOP, Browsing, assert_controls_labelled, open_as
from tests.conftest import User, UserFactory
from tests.test_reports import build

# Sunday 15 March 2026, 12:00 in Berlin: the last day of the history's period.
NOON = datetime(2026, 3, 15, 11, 0, tzinfo=UTC)


def row(page: Page, name: str) -> Locator:
    return page.locator("#report-table tbody tr", has=page.locator("th", has_text=name))


def cell(page: Page, name: str, column: str) -> Locator:
    return row(page, name).locator(f'[data-column="{column}"]')


def hash_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(page.url.partition("#")[2])


async def choose_report(page: Page, title: str) -> None:
    await page.get_by_role("navigation").get_by_role("link", name=title).click()
    await expect(page.locator("#report-title")).to_have_text(title)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")


async def shot(page: Page, path: Path, *, full_page: bool = True) -> None:
    await page.evaluate(
        "document.getElementById('toasts')?.remove(); document.activeElement?.blur()"
    )
    await page.screenshot(path=str(path), full_page=full_page)


async def test_the_reports_page(
    browser: Browser,
    browsing: Browsing,
    make_user: UserFactory,
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    with using(ManualClock(NOON)):
        ann = await make_user("operator", email="ann@example.com", name="Ann Meyer")
        bob = await make_user("operator", email="bob@example.com", name="Bob Stein")
        tom = await make_user("supervisor", email="tom@example.com", name="Tom Becker")
        history = await build(sessions, ann, bob)
        response = await tom.patch(
            "/api/v1/auth/me/preferences", json={"time_zone": "Europe/Berlin"}
        )
        assert response.status == 200, await response.text()
        await the_supervisors_reports(browsing, tom, ann, sessions, history.sales, artifacts)
        await an_operator_gets_the_403_page(browser, browsing, ann)


async def the_supervisors_reports(
    browsing: Browsing,
    tom: User,
    ann: User,
    sessions: SessionFactory,
    sales_queue: int,
    artifacts: Path,
) -> None:
    # The default: the first report (volume) over the last 7 days, written into the address.
    page = await open_as(browsing, tom, "/reports/")
    await expect(page.locator("#report-title")).to_have_text("Volume per channel")
    assert hash_of(page) == {
        "report": ["volume"],
        "start": ["2026-03-09"],
        "end": ["2026-03-15"],
    }
    await expect(page.get_by_role("button", name="Last 7 days")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(page.get_by_role("heading", name="Contact center")).to_be_visible()
    await expect(page.get_by_role("heading", name="Sales", exact=True)).to_be_visible()
    await assert_controls_labelled(page)

    # Sales by owner over the last 30 days: leads closed from 14 February to 15 March.
    await choose_report(page, "Sales by owner")
    await expect(page.get_by_label("Per", exact=True)).to_be_hidden()
    await expect(page.get_by_label("Owner", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Last 30 days").click()
    await expect(page.locator("#report-period")).to_have_text("Feb 14, 2026 to Mar 15, 2026")
    header = page.locator("#report-table thead")
    await expect(header).to_contain_text("Value won (EUR)")
    await expect(header).to_contain_text("Value won (USD)")
    await expect(cell(page, "Ann Meyer", "won")).to_have_text("1")
    await expect(cell(page, "Ann Meyer", "lost")).to_have_text("1")
    await expect(cell(page, "Ann Meyer", "win_rate")).to_have_text("50%")
    await expect(cell(page, "Ann Meyer", "won_value_EUR")).to_have_text("1,000.00")
    await expect(cell(page, "Bob Stein", "won")).to_have_text("2")
    await expect(cell(page, "Bob Stein", "won_value_USD")).to_have_text("200.00")
    # The row of everyone last and bold; the notes under the table.
    last = page.locator("#report-table tbody tr").last
    await expect(last.locator("th")).to_have_text("All")
    await expect(last.locator('[data-column="won"]')).to_have_text("3")
    await expect(last.locator("th")).to_have_css("font-weight", "700")
    await expect(page.locator("#notes")).to_contain_text("value won per currency")
    chart = page.locator("#chart svg[role=img]")
    await expect(chart).to_have_attribute("aria-label", re.compile(r"^Sales by owner: bars of"))
    await expect(chart.locator("rect.bar title").first).to_contain_text("Ann Meyer")
    await shot(page, artifacts / "reports-sales.png")

    # The lead without an owner is given to Ann and won (12:00 on the 15th).
    async with sessions() as session:
        open_lead = await session.scalar(select(Lead.id).where(Lead.stage == "qualified"))
    assert open_lead is not None
    for change in (
        {"owner_id": ann.operator.id, "value": "250", "currency": "EUR"},
        {"stage": "won"},
    ):
        response = await tom.patch(f"/api/v1/leads/{open_lead}", json=change)
        assert response.status == 200, await response.text()
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(cell(page, "Ann Meyer", "won")).to_have_text("2")
    await expect(cell(page, "Ann Meyer", "won_value_EUR")).to_have_text("1,250.00")
    await expect(cell(page, "All", "won")).to_have_text("4")

    # The funnel of the leads opened in the period: one shrinking bar per stage.
    await choose_report(page, "Sales funnel")
    await expect(page.get_by_label("Pipeline", exact=True)).to_be_visible()
    funnel = page.locator("#chart svg[role=img]")
    await expect(funnel).to_have_attribute("aria-label", re.compile(r"^Sales funnel: funnel of"))
    stages = await page.locator("#report-table tbody tr").count()
    assert stages >= 3
    await expect(funnel.locator("rect.funnel-step")).to_have_count(stages)
    await expect(cell(page, "New", "reached")).to_have_text("5")
    await expect(funnel.locator("rect.funnel-step").first.locator("title")).to_have_text("New: 5")

    # Response times per queue, then a row per operator: durations as people say them.
    await choose_report(page, "Response times, SLA and reopens")
    await expect(cell(page, "Support", "first_response_median")).to_have_text("30 min")
    await expect(cell(page, "Support", "first_response_p90")).to_have_text("1 h 30 min")
    await expect(cell(page, "Support", "sla_attainment")).to_have_text("50%")
    await expect(page.locator("#report-table tbody tr").last.locator("th")).to_have_text("All")
    await page.get_by_label("A row per").select_option(label="Operator")
    await expect(cell(page, "Unassigned", "conversations")).to_have_text("1")
    await expect(cell(page, "Ann Meyer", "conversations")).to_have_text("2")
    assert hash_of(page)["group_by"] == ["operator"]

    # The volume per day of the history's two weeks, stacked by channel.
    await choose_report(page, "Volume per channel")
    await expect(page.get_by_label("Owner", exact=True)).to_be_hidden()
    await page.get_by_label("From", exact=True).fill("2026-03-02")
    await expect(page.locator("#report-period")).to_have_text("Mar 2, 2026 to Mar 15, 2026")
    rows = page.locator("#report-table tbody tr")
    await expect(rows).to_have_count(14 * 3)
    legend = page.locator(".chart-legend")
    for channel in ("Email", "Telegram"):
        await expect(legend).to_contain_text(channel)
    await expect(page.locator("#chart svg[role=img]")).to_have_attribute(
        "aria-label", re.compile(r"stacked by .*Email.*; 6 in total$")
    )
    # The chart and the top of its long table (a row per day and channel).
    await shot(page, artifacts / "reports-volume.png", full_page=False)

    # Only the Sales queue: its telegram conversations; the filter stays across a reload.
    await page.get_by_label("Queue", exact=True).select_option(label="Sales")
    await expect(rows).to_have_count(14)
    await expect(page.locator('#report-table tbody [data-column="channel"]').first).to_have_text(
        "Telegram"
    )
    assert hash_of(page)["queue_id"] == [str(sales_queue)]
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.get_by_label("Queue", exact=True).locator("option:checked")).to_have_text(
        "Sales"
    )
    await expect(rows).to_have_count(14)
    assert hash_of(page)["start"] == ["2026-03-02"]

    # A period that ends before it starts: said next to the field, nothing breaks.
    await page.get_by_label("Until", exact=True).fill("2026-03-01")
    await expect(page.locator("#error-end")).to_contain_text("ends before it starts")
    await expect(page.get_by_label("Until", exact=True)).to_have_attribute("aria-invalid", "true")
    await page.get_by_label("Until", exact=True).fill("2026-03-15")
    await expect(page.locator("#error-end")).to_be_hidden()
    await expect(rows).to_have_count(14)

    # The CSV export: the same filters, the table's header first.
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download as CSV").click()
    download = await downloading.value
    assert download.suggested_filename == "volume-2026-03-02-2026-03-15.csv"
    saved = await download.path()
    lines = (await asyncio.to_thread(Path(saved).read_text, "utf-8-sig")).splitlines()
    assert lines[0] == "Period,Channel,Messages and calls in,Conversations opened"
    assert len(lines) == 1 + 14
    assert all(",telegram," in line for line in lines[1:])

    await a_weekly_email(page, tom, sessions, sales_queue)


async def a_weekly_email(page: Page, tom: User, sessions: SessionFactory, queue: int) -> None:
    """The report on screen (volume, Sales queue) emailed every Monday at 8, then stopped."""
    async with sessions() as session, session.begin():
        session.add(
            ChannelAccount(
                channel="email", name="Reports", settings={"address": "reports@example.com"}
            )
        )
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    section = page.locator("#subscriptions")
    await expect(section).to_be_visible()
    await expect(section.get_by_label("Send from")).to_have_value(re.compile(r"^\d+$"))
    await section.get_by_label("Every").select_option(label="Monday")
    await expect(section.get_by_label("At")).to_have_value("8")
    await section.get_by_role("button", name="Email me weekly").click()
    item = section.locator("#subscription-list li", has_text="Volume per channel")
    await expect(item).to_contain_text("Monday at 8:00 AM")
    await expect(item).to_contain_text("Queue: Sales")
    await expect(item).to_contain_text("Reports <reports@example.com>")
    [stored] = await (await tom.get("/api/v1/report-subscriptions")).json()
    assert stored["report"] == "volume"
    assert stored["filters"]["queue_id"] == str(queue)
    assert (stored["weekday"], stored["hour"], stored["time_zone"]) == (0, 8, "Europe/Berlin")
    await assert_controls_labelled(page)

    await item.get_by_role("button", name=re.compile("^Delete")).click()
    await expect(section.locator("#subscription-list")).to_have_text("No weekly emails yet.")
    assert await (await tom.get("/api/v1/report-subscriptions")).json() == []


async def an_operator_gets_the_403_page(browser: Browser, browsing: Browsing, ann: User) -> None:
    context = await browser.new_context(base_url=browsing.base_url, viewport=LAPTOP)
    try:
        cookies = ann.client.session.cookie_jar.filter_cookies(ann.client.make_url("/"))
        await context.add_cookies(
            [
                {"name": name, "value": morsel.value, "url": browsing.base_url}
                for name, morsel in cookies.items()
            ]
        )
        page = await context.new_page()
        response = await page.goto("/reports/")
        assert response is not None
        assert response.status == 403
        await expect(page.get_by_role("heading")).to_have_text("Supervisors only")
        await expect(page.locator("#report-table")).to_have_count(0)
        await page.goto("/console/")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(page.locator("#reports-link")).to_be_hidden()
    finally:
        await context.close()
