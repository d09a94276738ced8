"""The website chat in a real browser, on a customer's website of its own origin.

The shop's page is served by a second little aiohttp server on another loopback port, with the
embed snippet the admin gets (GET /api/v1/channel-accounts, `embed`) pointing at the omnicrm
server under test; the widget account allows that page's origin. Two browser contexts: the
visitor on the shop's page, and an operator signed in to the console.

- live both ways: the visitor's message arrives live in the console; the operator's typing and
  answer (with their name) reach the widget, and the answer shows read in the console; the
  visitor's typing and a picture reach the console; a reload and the site's next page keep the
  history (once) and the open panel; Escape closes it; nothing but omnicrm is asked;
- offline: nobody available, the widget says so and asks for an email or phone first, in the
  visitor's language (de), an error beside the field keeping what was typed;
- a foreign origin: the same snippet on another website shows nothing and stores nothing.

Screenshots: test-artifacts/webchat-widget.png and webchat-console.png (docs/img/ for
docs/channels/webchat.md).
"""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect
from sqlalchemy import func, select

from core.db import SessionFactory
from core.models import Contact, Identity, IdentityKind, Interaction
from tests.browser.conftest import LAPTOP, Browsing, assert_controls_labelled, sign_in, support_team
from tests.conftest import User, UserFactory

ServerFactory = Callable[..., Awaitable[TestServer]]


def shop_page(snippet: str, title: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
  body {{ margin: 0; font: 16px/1.5 Georgia, serif; color: #2d2a26; background: #faf7f2; }}
  header {{ padding: 18px 40px; background: #3f5e3a; color: #fff; font-size: 22px; }}
  main {{ padding: 30px 40px; max-width: 640px; }}
  .tea {{ display: inline-block; width: 180px; margin: 0 16px 16px 0; padding: 12px;
          background: #fff; border: 1px solid #e3dccf; border-radius: 8px; }}
</style></head>
<body>
<header>{escape(title)}</header>
<main>
  <h1>Green teas</h1>
  <p>Hand-picked leaves from small gardens, shipped within two days.</p>
  <div class="tea"><b>Sencha Fukamushi</b><br>100 g · 14.50 €</div>
  <div class="tea"><b>Gyokuro Asahi</b><br>50 g · 22.00 €</div>
  <div class="tea"><b>Longjing</b><br>100 g · 17.90 €</div>
  <p><a href="/delivery">Delivery and returns</a></p>
</main>
{snippet}
</body></html>"""


def tiny_png(width: int = 64, height: int = 40) -> bytes:
    """A small valid PNG: a green box with a darker stripe (for the preview in the widget)."""
    rows = b""
    for y in range(height):
        colour = b"\x3f\x5e\x3a" if 14 <= y < 26 else b"\x9c\xc5\x8f"
        rows += b"\x00" + colour * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def serve_shop(aiohttp_server: ServerFactory, snippet: str) -> str:
    """The shop's website, on a port (an origin) of its own; its origin."""

    async def page(request: web.Request) -> web.Response:
        title = "Nordwind Tea" if request.path == "/" else "Nordwind Tea · Delivery"
        return web.Response(text=shop_page(snippet, title), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/delivery", page)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@dataclass
class Shop:
    admin: User
    operator: User
    url: str  # the shop's website, whose origin the widget allows
    snippet: str


async def shop_with_chat(make_user: UserFactory, aiohttp_server: ServerFactory) -> Shop:
    """An admin, an operator in the Support queue, the shop's website with the widget on it."""
    team = await support_team(make_user)
    admin, operator, queue_id = team.admin, team.operator, team.queue_id
    # The shop's port is known before its page is: a placeholder origin, corrected below.
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={
            "channel": "webchat",
            "name": "shop",
            "queue_id": queue_id,
            "settings": {"allowed_origins": ["https://shop.example"], "title": "Nordwind Tea"},
        },
    )
    assert response.status == 201, await response.text()
    account = await response.json()
    [listed] = await (await admin.get("/api/v1/channel-accounts")).json()
    snippet = listed["embed"]
    assert snippet.startswith('<script type="module" src="http://127.0.0.1:')
    url = await serve_shop(aiohttp_server, snippet)
    response = await admin.patch(
        f"/api/v1/channel-accounts/{account['id']}",
        json={"settings": {"allowed_origins": [url]}},
    )
    assert response.status == 200, await response.text()
    return Shop(admin, operator, url, snippet)


@pytest.fixture
async def visitors(browser: Browser) -> AsyncIterator[Callable[..., Awaitable[Browsing]]]:
    """visitors(locale="en-US"): a browser context of the shop's visitors (no omnicrm base
    URL; fresh storage). At the end, no page of theirs may have thrown a script error."""
    opened: list[Browsing] = []

    async def factory(locale: str = "en-US") -> Browsing:
        context = await browser.new_context(viewport=LAPTOP, locale=locale)
        context.set_default_timeout(10_000)
        browsing = Browsing(context, "")
        opened.append(browsing)
        return browsing

    yield factory
    for browsing in opened:
        await browsing.context.close()
    errors = [error for item in opened for watch in item.watches for error in watch.page_errors]
    assert not errors, f"uncaught script errors on the shop's pages: {errors}"


async def stored_count(sessions: SessionFactory, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_visitor_and_an_operator_chat_live_both_ways(
    browsing: Browsing,
    visitors: Callable[..., Awaitable[Browsing]],
    make_user: UserFactory,
    aiohttp_server: ServerFactory,
    sessions: SessionFactory,
    artifacts: Path,
) -> None:
    shop = await shop_with_chat(make_user, aiohttp_server)
    console = await browsing.page()
    await sign_in(console, "anna@example.com")
    await console.evaluate("window.sameDocument = true")
    await console.get_by_label("Presence").select_option("available")
    await expect(console.locator("#presence")).to_have_value("available")

    site = await (await visitors()).page()
    fetched: list[str] = []  # everything the shop's page loads or connects to
    site.on("request", lambda request: fetched.append(request.url))
    site.on("websocket", lambda socket: fetched.append(socket.url))
    await site.goto(shop.url)
    bubble = site.locator('[data-webchat="bubble"]')
    await expect(bubble).to_have_accessible_name("Nordwind Tea")
    await bubble.click()
    panel = site.locator('[data-webchat="panel"]')
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("heading", name="Nordwind Tea")).to_be_visible()
    await expect(site.locator('[data-webchat="status"]')).to_have_text("We're online")
    await expect(site.locator('[data-webchat="prechat"]')).to_have_count(0)  # optional
    composer = site.locator('[data-webchat="input"]')
    await expect(composer).to_be_focused()
    await composer.fill("Hello! Do you ship to Tbilisi?")
    await composer.press("Enter")
    messages = site.locator('[data-webchat="message"]')
    first = messages.filter(has_text="Do you ship to Tbilisi?")
    await expect(first).to_have_attribute("data-state", "sent")
    await expect(first).to_have_attribute("data-direction", "in")

    # Live in the operator's console: routed to them; they open it.
    mine = console.locator('[data-section="mine"] .inbox-item')
    await expect(mine).to_have_count(1)
    await mine.click()
    view = console.locator(".conversation-view")
    await expect(view.locator(".timeline")).to_contain_text("Hello! Do you ship to Tbilisi?")
    await expect(view.locator('.item[data-channel="webchat"]').first).to_be_visible()
    await expect(console.get_by_label("Send via")).to_have_value("webchat")

    # The operator starts typing: the visitor sees who.
    reply = console.get_by_label("Reply to the customer")
    await reply.press_sequentially("Yes, we do: 5 to 7 days.")
    typing = site.locator('[data-webchat="typing"]')
    await expect(typing).to_have_text("Anna Novak is typing…")
    await reply.press("Control+Enter")
    answer = messages.filter(has_text="Yes, we do: 5 to 7 days.")
    await expect(answer).to_have_attribute("data-direction", "out")
    await expect(answer.locator(".who")).to_have_text("Anna Novak")
    await expect(typing).to_be_hidden()
    # The panel is open and in view: the answer is read, and the console says so.
    delivery = view.locator(".item-out", has_text="5 to 7 days").locator(".delivery")
    await expect(delivery).to_have_text("read")
    # Sent with Ctrl+Enter, the answer ended the typing: the next one is announced afresh.
    await reply.press_sequentially("Anything else?")
    await expect(typing).to_have_text("Anna Novak is typing…")
    await reply.press("Control+Enter")
    await expect(messages.filter(has_text="Anything else?")).to_have_attribute(
        "data-direction", "out"
    )
    await expect(typing).to_be_hidden()

    # The visitor types: the console shows it, and stops showing it when they send.
    customer_typing = view.locator(".customer-typing")
    await expect(customer_typing).to_be_hidden()
    await composer.press_sequentially("Great, here is the box")
    await expect(customer_typing).to_be_visible()
    await expect(customer_typing).to_have_text("The customer is typing…")
    await composer.press("Enter")
    await expect(messages.filter(has_text="here is the box")).to_have_attribute(
        "data-state", "sent"
    )
    await expect(customer_typing).to_be_hidden()

    # A picture through the file input: the console shows it as the message's attachment.
    await site.locator('[data-webchat="file"]').set_input_files(
        {"name": "box.png", "mimeType": "image/png", "buffer": tiny_png()}
    )
    picture = messages.filter(has_text="box.png")
    await expect(picture).to_have_attribute("data-state", "sent")
    await expect(picture.get_by_role("img", name="box.png")).to_be_visible()  # its preview
    attachment = view.locator(".item-in .attachments", has_text="box.png")
    await expect(attachment).to_be_visible()
    await expect(attachment.get_by_role("link", name=re.compile("box.png"))).to_have_attribute(
        "href", re.compile(r"^/api/v1/interactions/\d+/attachments/0$")
    )

    # For the screenshots: the visitor writing again, which the console shows.
    await composer.press_sequentially("Thank you!")
    await expect(customer_typing).to_be_visible()
    # The typing line took room at the bottom: bring the picture back into view (in the page,
    # in one step: the timeline may redraw as the visitor types).
    await console.evaluate(
        """() => {
          const shown = document.querySelectorAll(".item-in .attachments");
          shown[shown.length - 1]?.scrollIntoView({ block: "nearest" });
        }"""
    )
    await expect(console.locator(".toast")).to_have_count(0)
    await console.screenshot(path=artifacts / "webchat-console.png")
    await site.screenshot(path=artifacts / "webchat-widget.png")

    # A reload: the same history, each message once, and the panel still open.
    before = await messages.evaluate_all("items => items.map(item => item.dataset.id)")
    assert len(before) == 5
    assert len(set(before)) == 5
    await site.reload()
    await expect(panel).to_be_visible()
    await expect(messages).to_have_count(5)
    after = await messages.evaluate_all("items => items.map(item => item.dataset.id)")
    assert after == before
    await expect(messages.last.get_by_role("img", name="box.png")).to_be_visible()
    # The next page of the site: the same chat (the same browser).
    await site.get_by_role("link", name="Delivery and returns").click()
    await expect(site).to_have_title("Nordwind Tea · Delivery")
    await expect(panel).to_be_visible()
    await expect(messages).to_have_count(5)
    # Every control has a name; Escape closes the panel and gives the focus back to the bubble.
    await assert_controls_labelled(site)
    await composer.focus()
    await site.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(bubble).to_be_focused()
    assert await console.evaluate("window.sameDocument") is True
    assert await stored_count(sessions, Interaction) == 5
    # The widget asks only omnicrm: no third party hears of the visit.
    omnicrm = browsing.base_url
    elsewhere = [
        url
        for url in fetched
        if not url.startswith((shop.url + "/", omnicrm + "/", omnicrm.replace("http", "ws", 1)))
        and not url.startswith("blob:")
    ]
    assert not elsewhere, elsewhere
    assert any(
        url.startswith(omnicrm.replace("http", "ws", 1) + "/webchat/shop/live") for url in fetched
    )


async def test_offline_the_widget_asks_for_an_email_first_in_the_visitors_language(
    visitors: Callable[..., Awaitable[Browsing]],
    make_user: UserFactory,
    aiohttp_server: ServerFactory,
    sessions: SessionFactory,
) -> None:
    shop = await shop_with_chat(make_user, aiohttp_server)  # nobody is available
    site = await (await visitors("de-DE")).page()
    await site.goto(shop.url)
    bubble = site.locator('[data-webchat="bubble"]')
    await bubble.click()
    await expect(site.locator('[data-webchat="status"]')).to_contain_text(
        "Wir sind gerade nicht da"
    )
    form = site.locator('[data-webchat="prechat"]')
    await expect(form).to_contain_text("Hinterlassen Sie Ihre E-Mail-Adresse oder Telefonnummer")
    await expect(site.locator('[data-webchat="input"]')).to_be_hidden()  # the form first
    await expect(form.get_by_label("Name")).to_be_focused()

    await form.get_by_label("Name").fill("Kim Berger")
    email = form.get_by_label("E-Mail")
    await email.fill("kim at example")
    await form.get_by_role("button", name="Chat starten").click()
    # The error beside the field, in German; what was typed stays.
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(email).to_have_accessible_description("das ist keine E-Mail-Adresse")
    await expect(email).to_be_focused()
    await expect(email).to_have_value("kim at example")
    await expect(form.get_by_label("Name")).to_have_value("Kim Berger")

    await email.fill("Kim.Berger@example.com")
    await form.get_by_role("button", name="Chat starten").click()
    await expect(form).to_have_count(0)
    composer = site.locator('[data-webchat="input"]')
    await expect(composer).to_be_focused()
    await composer.fill("Ist meine Bestellung 4711 unterwegs?")
    await composer.press("Enter")
    await expect(
        site.locator('[data-webchat="message"]', has_text="Bestellung 4711")
    ).to_have_attribute("data-state", "sent")

    async with sessions() as session:
        interaction = await session.scalar(select(Interaction))
        assert interaction is not None
        assert interaction.channel == "webchat"
        assert interaction.text == "Ist meine Bestellung 4711 unterwegs?"
        contact = await session.get(Contact, interaction.contact_id)
        addresses = set(
            await session.execute(
                select(Identity.kind, Identity.address).where(
                    Identity.contact_id == interaction.contact_id
                )
            )
        )
    assert contact is not None
    assert contact.display_name == "Kim Berger"
    assert (IdentityKind.EMAIL, "kim.berger@example.com") in addresses
    assert {kind for kind, _ in addresses} == {IdentityKind.EMAIL, IdentityKind.WEB}


async def test_the_snippet_on_a_foreign_website_shows_nothing_and_stores_nothing(
    visitors: Callable[..., Awaitable[Browsing]],
    make_user: UserFactory,
    aiohttp_server: ServerFactory,
    sessions: SessionFactory,
) -> None:
    shop = await shop_with_chat(make_user, aiohttp_server)
    elsewhere = await serve_shop(aiohttp_server, shop.snippet)  # another port: another origin
    assert elsewhere != shop.url
    contacts = await stored_count(sessions, Contact)
    page = await (await visitors()).page()
    await page.clock.install()  # the widget's waits between attempts, fast-forwarded
    refused: list[str] = []
    page.on("requestfailed", lambda request: refused.append(request.url))
    warnings: list[str] = []
    page.on(
        "console",
        lambda message: warnings.append(message.text) if message.type == "warning" else None,
    )
    await page.goto(elsewhere)
    # Refused without CORS headers, which looks like a network error to the widget: it tries
    # again a few times, then gives up with a warning on the console.
    for _ in range(100):
        if warnings:
            break
        await page.clock.fast_forward(2_000)
        await asyncio.sleep(0.05)
    assert [text for text in warnings if text.startswith("omnicrm chat:")], warnings
    assert 1 <= len(refused) <= 4, refused
    assert all("/webchat/shop/session" in url for url in refused), refused
    await expect(page.locator("#omnicrm-webchat")).to_have_count(0)
    await expect(page.locator('[data-webchat="bubble"]')).to_have_count(0)
    assert await stored_count(sessions, Interaction) == 0
    assert await stored_count(sessions, Contact) == contacts
