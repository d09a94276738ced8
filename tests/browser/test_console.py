"""The agent console and the supervisor monitor in a real browser (Debian's Chromium).

What a person at the screen would notice: a customer's web-form message shows up live, the
operator accepts the offer and answers, and the answer is committed to the outbox; the monitor's
queue counts move live; hostile email HTML stays inert; roles hold in the UI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, Request, expect
from sqlalchemy import select

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import Conversation, IdentityKind, Interaction, OutboxItem
from tests.browser.conftest import Browsing, assert_controls_labelled, open_as, sign_in
from tests.conftest import User, UserFactory
from web.keys import INGEST_POLICY


@dataclass
class Center:
    """A small contact center: an admin, an operator working the Support queue, a web form."""

    admin: User
    operator: User
    queue_id: int


async def contact_center(make_user: UserFactory, *, offer_timeout: int | None = 60) -> Center:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    operator = await make_user("operator", email="anna@example.com", name="Anna Novak")
    config: dict[str, Any] = {"offer_timeout_seconds": offer_timeout} if offer_timeout else {}
    response = await admin.post("/api/v1/queues", json={"name": "Support", "config": config})
    assert response.status == 201, await response.text()
    queue_id = (await response.json())["id"]
    response = await admin.put(
        f"/api/v1/queues/{queue_id}/members", json={"operator_ids": [operator.operator.id]}
    )
    assert response.status == 200, await response.text()
    response = await admin.patch(
        f"/api/v1/operators/{operator.operator.id}",
        json={"capacity": {"messaging": 5, "email": 10}},
    )
    assert response.status == 200, await response.text()
    response = await admin.post(
        "/api/v1/forms", json={"slug": "contact", "title": "Contact us", "queue_id": queue_id}
    )
    assert response.status == 201, await response.text()
    return Center(admin, operator, queue_id)


async def submit_form(client: TestClient[Any, Any], name: str, email: str, message: str) -> int:
    response = await client.post(
        "/forms/contact", json={"name": name, "email": email, "message": message}
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["conversation_id"])


async def test_an_offer_counts_down_by_the_servers_clock_when_the_computers_is_off(
    browsing: Browsing, make_user: UserFactory, client: TestClient[Any, Any]
) -> None:
    await contact_center(make_user)
    page = await browsing.page()
    # The operator's computer believes it is 2001; time still passes there.
    await page.clock.install(time=datetime(2001, 1, 1, 9, 0, tzinfo=UTC))
    await page.clock.resume()
    await sign_in(page, "anna@example.com")
    await page.get_by_label("Presence").select_option("available")
    await expect(page.locator("#presence")).to_have_value("available")
    await submit_form(client, "Jonas Weber", "jonas@nordwind.example", "Where is my order?")
    countdown = page.locator(".offer .countdown")
    # The queue gives 60 seconds to accept: shown as such, not as 25 years.
    await expect(countdown).to_have_text(re.compile(r"^[1-6]?\d s$"))
    first = await countdown.text_content()
    await expect(countdown).not_to_have_text(first or "")


async def test_a_web_form_message_arrives_live_and_the_operator_accepts_and_answers(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    center = await contact_center(make_user)
    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    # Marks this document: a reload would lose it.
    await page.evaluate("window.sameDocument = true")

    await page.get_by_label("Presence").select_option("available")
    await expect(page.locator("#presence")).to_have_value("available")
    conversation_id = await submit_form(
        client, "Jonas Weber", "jonas@nordwind.example", "Where is my order 4711?"
    )

    # The offer shows with its countdown, and the conversation is in the inbox, live.
    offer = page.locator(".offer")
    await expect(offer).to_contain_text("Jonas Weber")
    await expect(offer.locator(".countdown")).to_have_text(re.compile(r"^[1-6]?\d s$"))
    await expect(page.locator('[data-section="unassigned"] .inbox-item')).to_contain_text(
        "Jonas Weber"
    )
    first = await offer.locator(".countdown").text_content()
    await expect(offer.locator(".countdown")).not_to_have_text(first or "")  # it counts down

    await offer.get_by_role("button", name="Accept").click()
    await expect(page.locator(".offer")).to_have_count(0)
    mine = page.locator('[data-section="mine"] .inbox-item')
    await expect(mine).to_contain_text("Jonas Weber")
    view = page.locator(f'.conversation-view[data-conversation-id="{conversation_id}"]')
    await expect(view.locator(".timeline")).to_contain_text("Where is my order 4711?")
    form_icon = view.locator('.item[data-channel="webform"] svg[aria-label="Web form"]')
    await expect(form_icon).to_be_visible()
    await expect(view.locator(".assignee")).to_have_text("assigned to Anna Novak")
    # The routing log speaks people: who got it and who decided, by name.
    accepted = view.locator('.item-event[data-routing-kind="accepted"]')
    await expect(accepted).to_contain_text("Anna Novak accepted the offer")
    await expect(accepted.locator(".actor")).to_have_text("by Anna Novak")
    await expect(view.locator('.item-event[data-routing-kind="queue"]')).to_contain_text(
        "by routing"
    )

    # The answer goes out by email, the web form's answering channel.
    await expect(page.get_by_label("Send via")).to_have_value("email")
    await page.get_by_label("Reply to the customer").fill("It left our warehouse today.")
    await page.keyboard.press("Control+Enter")
    await expect(view.locator(".item-out")).to_contain_text("It left our warehouse today.")
    await page.screenshot(path=artifacts / "console.png")

    async with sessions() as session:
        items = list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.conversation_id == conversation_id)
            )
        )
        conversation = await session.get(Conversation, conversation_id)
    assert len(items) == 1
    assert items[0].channel == "email"
    assert items[0].recipient == "jonas@nordwind.example"
    assert items[0].payload["text"] == "It left our warehouse today."
    assert conversation is not None
    assert conversation.assignee_id == center.operator.operator.id
    assert conversation.first_response_at is not None
    assert await page.evaluate("window.sameDocument") is True


async def test_the_monitor_shows_queue_counts_change_live(
    browsing: Browsing, make_user: UserFactory, client: TestClient[Any, Any], artifacts: Path
) -> None:
    center = await contact_center(make_user)
    supervisor = await make_user("supervisor", email="tom@example.com", name="Tom Becker")
    page = await open_as(browsing, supervisor, "/monitor/")
    await page.evaluate("window.sameDocument = true")
    row = page.locator("#queues tbody tr", has_text="Support")
    await expect(row.locator('[data-field="waiting"]')).to_have_text("0")

    # Nobody is available: both wait in the queue.
    await submit_form(client, "Jonas Weber", "jonas@nordwind.example", "Order 4711?")
    await expect(row.locator('[data-field="waiting"]')).to_have_text("1")
    await submit_form(client, "Eva Schmidt", "eva@example.com", "Invoice copy, please")
    await expect(row.locator('[data-field="waiting"]')).to_have_text("2")
    await expect(page.locator("#waiting tbody tr")).to_have_count(2)
    await expect(page.locator("#operators")).to_contain_text("Anna Novak")
    await expect(page.locator("#volume-chart rect.bar").first).to_be_visible()
    await assert_controls_labelled(page)

    # Assigning from the monitor takes the work out of the queue.
    await (
        page.locator("#waiting tbody tr", has_text="Jonas Weber")
        .get_by_role("button", name=re.compile("^Assign"))
        .click()
    )
    await page.get_by_label("To", exact=True).select_option(str(center.operator.operator.id))
    await page.get_by_role("button", name="Reassign").click()
    await expect(row.locator('[data-field="waiting"]')).to_have_text("1")
    anna = page.locator("#operators tbody tr", has_text="Anna Novak")
    await expect(anna.locator(".chips")).to_contain_text("Jonas Weber")
    assert await page.evaluate("window.sameDocument") is True
    await page.screenshot(path=artifacts / "monitor.png", full_page=True)


# Every trick below would, if it ran or loaded, set window.top.pwned, show a dialog, log
# "pwned", or request a URL with "pwned" in it from the test server (watched below).
HOSTILE_HTML = """<html><head>
<script>window.top.pwned = "head script"; console.log("pwned head")</script>
<style>@import url(/pwned-import.css); body { background: url('/pwned-bg.png') }</style>
<link rel="stylesheet" href="/pwned-link.css">
<meta http-equiv="refresh" content="0; url=/pwned-refresh">
<base href="https://evil.example/">
</head>
<body onload="window.top.pwned = 'onload'">
<p onclick="window.top.pwned = 'click'" id="order">My order number is <b>1234</b>.</p>
<a id="js-link" href="javascript:window.top.pwned='link';alert('link')">click me</a>
<a href="https://shop.example/orders/1234">order page</a>
<img src="/pwned-pixel.gif" onerror="window.top.pwned = 'img'; fetch('/pwned-fetch')">
<img src="x" onerror="alert('pwned')">
<img srcset="/pwned-srcset.png 1x" alt="srcset">
<svg onload="window.top.pwned = 'svg onload'"><script>window.top.pwned = 'svg'</script>
<image href="/pwned-svg.png"/></svg>
<div style="background-image: url(/pwned-div.png)">styled</div>
<iframe src="/pwned-frame"></iframe>
<object data="/pwned-object"></object>
<embed src="/pwned-embed">
<form action="/pwned-form"><input name="password"><button id="go">go</button></form>
<video poster="/pwned-poster.png" src="/pwned-video.mp4"></video>
<math><mtext><table><mglyph><style><img src=x onerror="window.top.pwned='mxss'">
</style></mglyph></table></mtext></math>
</body></html>"""


async def test_hostile_email_html_renders_inert_in_a_sandboxed_frame(
    browsing: Browsing, make_user: UserFactory, sessions: SessionFactory, app: Any
) -> None:
    center = await contact_center(make_user, offer_timeout=None)
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<hostile-1@example.com>",
                addresses=[Address(IdentityKind.EMAIL, "mallory@example.com")],
                display_name="Mallory",
                subject="Please look at my order",
                text="My order number is 1234.",
                html=HOSTILE_HTML,
                queue_id=center.queue_id,
            ),
            app[INGEST_POLICY],
        )
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
        conversation.assignee_id = center.operator.operator.id
        # Stored raw, as if it had slipped past ingest's sanitizer: the page must hold anyway.
        interaction = await session.get(Interaction, result.interaction_id)
        assert interaction is not None
        interaction.html = HOSTILE_HTML

    requests: list[str] = []
    dialogs: list[str] = []
    logs: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    browsing.context.on("request", on_request)
    browsing.context.on("dialog", lambda dialog: dialogs.append(dialog.message))
    browsing.context.on("console", lambda message: logs.append(message.text))
    page = await open_as(browsing, center.operator)
    await page.locator('[data-section="mine"] .inbox-item', has_text="Mallory").click()

    frame_element = page.locator("iframe.email-frame")
    await expect(frame_element).to_be_visible()
    # An empty sandbox: no scripts, no same origin, no forms, no popups, no top navigation.
    assert await frame_element.get_attribute("sandbox") == ""
    frame = page.frame_locator("iframe.email-frame")
    order = frame.get_by_text("My order number is")
    await expect(order).to_contain_text("My order number is 1234.")
    html_response = await page.request.get(f"/api/v1/interactions/{result.interaction_id}/html")
    policy = html_response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert "script-src" not in policy

    # Poke at it the way a curious operator would.
    await order.click()
    await frame.get_by_text("click me").click()
    await page.wait_for_timeout(500)

    assert await page.evaluate("window.pwned") is None
    assert not dialogs
    assert not [line for line in logs if "pwned" in line]
    assert not [url for url in requests if "pwned" in url or "evil.example" in url]
    # The console itself is where it was: the frame could not navigate it.
    assert page.url.endswith(f"/console/#c={result.conversation_id}")


async def test_an_operator_cannot_open_the_monitor(
    browsing: Browsing, make_user: UserFactory
) -> None:
    operator = await make_user("operator", email="anna@example.com", name="Anna Novak")
    page = await open_as(browsing, operator)
    await expect(page.locator("#monitor-link")).to_be_hidden()

    response = await page.goto("/monitor/")
    assert response is not None
    assert response.status == 403
    await expect(page.get_by_role("heading")).to_have_text("Supervisors only")
    await expect(page.locator("table")).to_have_count(0)
    api = await page.request.get("/api/v1/monitor")
    assert api.status == 403

    # Signed out, both pages send you to sign in.
    await page.context.clear_cookies()
    for path in ("/console/", "/monitor/"):
        await page.goto(path)
        await page.wait_for_url(re.compile(rf"/login\?next={re.escape(path)}$"))


async def test_an_operator_works_by_keyboard_with_canned_responses_mentions_and_actions(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
) -> None:
    center = await contact_center(make_user, offer_timeout=None)
    colleague = await make_user("operator", email="luis@example.com", name="Luis Garcia")
    response = await center.admin.put(
        f"/api/v1/queues/{center.queue_id}/members",
        json={"operator_ids": [center.operator.operator.id, colleague.operator.id]},
    )
    assert response.status == 200
    response = await center.admin.post(
        "/api/v1/canned-responses",
        json={
            "title": "Greeting",
            "shortcut": "hi",
            "body": "Hello {{contact.first_name}}, this is {{operator.first_name}}.",
            "shared": True,
        },
    )
    assert response.status == 201, await response.text()
    conversation_id = await submit_form(
        client, "Jonas Weber", "jonas@nordwind.example", "Can I change the address?"
    )
    async with sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.assignee_id = center.operator.operator.id

    page = await open_as(browsing, center.operator)
    await expect(page.locator('[data-section="mine"] .inbox-item')).to_contain_text("Jonas Weber")
    await page.keyboard.press("j")
    view = page.locator(f'.conversation-view[data-conversation-id="{conversation_id}"]')
    await expect(view.locator(".timeline")).to_contain_text("Can I change the address?")
    await assert_controls_labelled(page)

    # The canned response, filled in by the server.
    await page.keyboard.press("r")
    await page.get_by_label("Insert a canned response").select_option(label="Greeting (/hi)")
    textarea = page.locator("#composer-text")
    await expect(textarea).to_have_value("Hello Jonas, this is Anna.")

    # A note mentioning a colleague, picked from the list with the keyboard.
    await textarea.fill("")
    await page.locator("#composer-text").press("Escape")
    await page.keyboard.press("n")
    await page.keyboard.type("Please check this, @lu")
    await expect(page.locator("#mention-list")).to_contain_text("Luis Garcia")
    await page.keyboard.press("Enter")
    await page.keyboard.type("thanks")
    await page.keyboard.press("Control+Enter")
    await expect(view.locator(".item-note")).to_contain_text("Please check this, @luis thanks")
    notifications = await (await colleague.get("/api/v1/notifications")).json()
    assert notifications["unread_count"] == 1
    assert notifications["items"][0]["conversation_id"] == conversation_id

    # Resolve with "e"; the status shows and is stored.
    await page.locator("#conversation").focus()
    await page.keyboard.press("e")
    await expect(view.locator(".pill[data-status]")).to_have_text("resolved")
    async with sessions() as session:
        stored = await session.get(Conversation, conversation_id)
        notes = list(
            await session.scalars(
                select(Interaction).where(
                    Interaction.conversation_id == conversation_id, Interaction.kind == "note"
                )
            )
        )
    assert stored is not None
    assert stored.status == "resolved"
    assert [note.text for note in notes] == ["Please check this, @luis thanks"]


# Records each desktop notification the page raises, and makes the console believe the
# operator works in another window (a notification is for when the console is not in front).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.raisedNotifications = [];
  class Recording extends Real {
    constructor(title, options) {
      window.raisedNotifications.push({ title, body: (options && options.body) || "" });
      super(title, options);
    }
  }
  Object.defineProperty(Recording, "permission", { get: () => Real.permission });
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recording;
  document.hasFocus = () => false;
})();
"""


async def raised(page: Page, count: int) -> list[dict[str, str]]:
    """The notifications the page raised, once there are `count` (the page's CSP forbids
    wait_for_function's evaluation, so this polls)."""
    for _ in range(100):
        found: list[dict[str, str]] = await page.evaluate("window.raisedNotifications")
        if len(found) >= count:
            return found
        await page.wait_for_timeout(100)
    raise AssertionError(f"{count} notifications expected, the page raised {found}")


async def test_offers_and_mentions_reach_an_operator_in_another_window(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    artifacts: Path,
) -> None:
    center = await contact_center(make_user)
    await browsing.context.grant_permissions(["notifications"], origin=browsing.base_url)
    await browsing.context.add_init_script(RECORD_NOTIFICATIONS)
    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.get_by_label("Presence").select_option("available")
    await expect(page.locator("#presence")).to_have_value("available")

    # The operator's choices: desktop notifications on by default, a sound if they like.
    await page.get_by_role("button", name="Alerts").click()
    dialog = page.locator("#attention-dialog")
    await expect(dialog).to_contain_text("Desktop notifications are allowed.")
    await dialog.get_by_label("Sound").check()
    await expect(page.locator(".toast").last).to_contain_text("Saved")
    await page.screenshot(path=str(artifacts / "console-alerts.png"))
    await dialog.get_by_role("button", name="Close").click()
    prefs = await (await center.operator.get("/api/v1/auth/me/preferences")).json()
    assert (prefs["desktop_notifications"], prefs["sound"]) == (True, True)

    conversation_id = await submit_form(
        client, "Jonas Weber", "jonas@nordwind.example", "Where is my order 4711?"
    )
    await expect(page.locator(".offer")).to_contain_text("Jonas Weber")
    [offer] = await raised(page, 1)
    assert offer["title"] == "New offer"
    assert "Jonas Weber" in offer["body"]
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
    assert await page.evaluate("document.body.dataset.lastChime !== undefined")

    # Accepting clears the count; a colleague's @mention raises one of its own.
    await page.locator(".offer").get_by_role("button", name="Accept").click()
    await expect(page).not_to_have_title(re.compile(r"^\("))
    note = await center.admin.post(
        f"/api/v1/conversations/{conversation_id}/notes",
        json={"text": "@anna the customer called about 4711 as well"},
    )
    assert note.status == 201, await note.text()
    mention = (await raised(page, 2))[1]
    assert mention["title"] == "Maria Keller mentioned you"
    assert "4711" in mention["body"]
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
