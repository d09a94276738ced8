"""Suggested replies in a real browser (issue 15): the console's panel and the monitor's figure.

Max asked where his order was; Anna answered and resolved the conversation, so her answer
became a suggestion (made general: his name and order number are placeholders). Now Lena asks
much the same. Anna opens Lena's conversation:

- the "Suggested replies" panel shows Anna's earlier answer: a team reply, from Max's
  conversation (a link that opens it), with the words it matched and its score;
- Lena writes again: the panel asks again (the live event);
- Insert puts the text into the reply box filled for Lena: her name, and the number of the
  order she asked about (not her newer one), from the ERP as a canned response's
  {{order.number}} is; clearing the box forgets it;
- Anna changes a word and sends: the reply is in the timeline, and the server counted the
  suggestion as sent (its events, and the supervisor's stats);
- the monitor shows Tom, a supervisor, the week's figures: half the replies came from a
  suggestion, one sent, none edited or ignored;
- Tom marks Anna's answer in Max's conversation "Never suggest": it is excluded, and Lena's
  conversation has nothing to suggest any more (the empty state);
- and no page logged an error on the way.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from playwright.async_api import Locator, Page, expect
from sqlalchemy import select

from core.audit import CLI
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role, SuggestionDoc, SuggestionEvent, utcnow
from erp_bridge.embedded_data import OrderData, save_order
from tests.browser.conftest import (
    Browsing,
    assert_controls_labelled,
    open_as,
    sign_in,
    support_team,
)
from tests.conftest import User, UserFactory
from web.keys import INGEST_POLICY, SESSIONS

LENA = "lena.fischer@example.de"
LENA_ORDER = "20417"
LENA_NEWER_ORDER = "20593"
ANSWER = (
    "Hello Max, your order 10330 left our warehouse yesterday and arrives within two days. "
    "Best regards, Anna"
)
FOR_LENA = (
    f"Hello Lena, your order {LENA_ORDER} left our warehouse yesterday and arrives within two "
    "days. Best regards, Anna"
)
EDITED = FOR_LENA.replace("yesterday", "this morning")


async def customer_writes(
    app: web.Application,
    external_id: str,
    email: str,
    name: str,
    text: str,
    queue_id: int,
    subject: str = "",
) -> tuple[int, int]:
    """A message from the customer, through the app's own sessions (its live events reach the
    console): (conversation id, interaction id)."""
    async with app[SESSIONS]() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=external_id,
                addresses=[Address(IdentityKind.EMAIL, email)],
                display_name=name,
                subject=subject,
                text=text,
                queue_id=queue_id,
                language="en",
            ),
            app[INGEST_POLICY],
        )
    return arrived.conversation_id, arrived.interaction_id


async def assign(admin: User, conversation_id: int, operator: User) -> None:
    response = await admin.post(
        f"/api/v1/conversations/{conversation_id}/assign",
        json={"assignee_id": operator.operator.id},
    )
    assert response.status == 200, await response.text()


async def answered_and_resolved(app: web.Application, admin: User, anna: User, queue: int) -> int:
    """Max's question, Anna's answer, resolved (which indexes the answer): its conversation."""
    max_id, _ = await customer_writes(
        app,
        "max-1",
        "max.mueller@example.de",
        "Max Müller",
        "Hello, where is my order 10330? It has not arrived yet.",
        queue,
        subject="Where is my order?",
    )
    await assign(admin, max_id, anna)
    path = f"/api/v1/conversations/{max_id}"
    reply = await anna.post(f"{path}/reply", json={"text": ANSWER})
    assert reply.status == 201, await reply.text()
    resolved = await anna.post(f"{path}/status", json={"status": "resolved"})
    assert resolved.status == 200, await resolved.text()
    return max_id


async def lena_has_orders(app: web.Application) -> None:
    """Lena's orders in the embedded ERP: the one she asks about, and a newer one. The console
    fills {{order.number}} with the one she wrote in the conversation, not her latest."""
    now = utcnow()
    async with app[SESSIONS]() as session, session.begin():
        for number, days in ((LENA_ORDER, 4), (LENA_NEWER_ORDER, 1)):
            await save_order(
                session,
                CLI,
                OrderData.model_validate(
                    {
                        "number": number,
                        "customer": LENA,
                        "ordered_at": (now - timedelta(days=days)).isoformat(),
                        "status": "shipped",
                        "currency": "EUR",
                        "lines": [],
                    }
                ),
            )


async def canned_and_article(tom: User) -> None:
    """Tom's shared canned response and public article about orders on their way: suggested
    too (each with where it came from), and passed over here."""
    canned = await tom.post(
        "/api/v1/canned-responses",
        json={
            "title": "Order on its way",
            "body": "Your order {{order.number}} is on its way.",
            "shared": True,
        },
    )
    assert canned.status == 201, await canned.text()
    article = await tom.post(
        "/api/v1/knowledge/articles",
        json={
            "slug": "delivery-times",
            "language": "en",
            "title": "Delivery times",
            "body": "An order arrives within two to four working days.",
            "tags": ["order", "delivery"],
            "visibility": "public",
        },
    )
    assert article.status == 201, await article.text()


async def events_of(app: web.Application, conversation_id: int) -> Counter[tuple[str, int | None]]:
    async with app[SESSIONS]() as session:
        rows = await session.execute(
            select(SuggestionEvent.outcome, SuggestionEvent.doc_id)
            .where(SuggestionEvent.conversation_id == conversation_id)
            .order_by(SuggestionEvent.id)
        )
        return Counter((str(outcome), doc_id) for outcome, doc_id in rows)


async def test_an_operator_inserts_a_suggested_reply_and_the_monitor_counts_it(
    browsing: Browsing,
    make_user: UserFactory,
    app: web.Application,
    artifacts: Path,
) -> None:
    team = await support_team(make_user)
    tom = await make_user(Role.SUPERVISOR, email="tom@example.com", name="Tom Becker")
    max_id = await answered_and_resolved(app, team.admin, team.operator, team.queue_id)
    lena_id, first = await customer_writes(
        app,
        "lena-1",
        LENA,
        "Lena Fischer",
        "Hi, where is my order 20417? It still has not arrived.",
        team.queue_id,
    )
    await assign(team.admin, lena_id, team.operator)
    await lena_has_orders(app)
    await canned_and_article(tom)

    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.locator('[data-section="mine"] .inbox-item', has_text="Lena Fischer").click()
    view = page.locator(f'.conversation-view[data-conversation-id="{lena_id}"]')
    await expect(view.locator(".timeline")).to_contain_text("where is my order")

    # The panel: Anna's answer to Max, where it came from and why; the canned response and
    # the article as well.
    panel = view.locator("section.suggestions")
    await expect(panel).to_have_attribute("data-state", "ready")
    toggle = panel.get_by_role("button", name="Suggested replies")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(panel.locator(".suggestion")).to_have_count(3)
    card = panel.locator('.suggestion[data-kind="reply"]')
    await expect(card).to_have_count(1)
    await expect(card.locator(".suggestion-kind")).to_have_text("Team reply")
    source = card.locator(".suggestion-source-link")
    await expect(source).to_have_text(f"conversation #{max_id}")
    await expect(source).to_have_attribute("href", f"#c={max_id}")
    await expect(card.locator(".suggestion-preview")).to_contain_text(
        "left our warehouse yesterday"
    )
    terms = card.locator(".suggestion-term")
    await expect(terms.filter(has_text="order")).to_have_count(1)
    await expect(terms.filter(has_text="arrived")).to_have_count(1)
    await expect(card.locator(".suggestion-score")).to_have_text(re.compile(r"^score \d"))
    await expect(panel).to_have_attribute("data-answering", str(first))
    suggestion_id = int(await card.get_attribute("data-suggestion-id") or 0)
    canned = panel.locator('.suggestion[data-kind="canned"]')
    await expect(canned.locator(".suggestion-kind")).to_have_text("Canned response")
    await expect(canned.locator(".suggestion-source")).to_have_text("Order on its way")
    article = panel.locator('.suggestion[data-kind="article"]')
    await expect(article.locator(".suggestion-source-link")).to_have_text("Delivery times")
    canned_id = int(await canned.get_attribute("data-suggestion-id") or 0)
    article_id = int(await article.get_attribute("data-suggestion-id") or 0)
    box_before = await page.get_by_label("Reply to the customer").bounding_box()

    # Lena writes again: the panel asks again for her new question, and stays where it was.
    requests: list[str] = []
    page.on(
        "request",
        lambda request: requests.append(request.url) if "/suggestions" in request.url else None,
    )
    _, again = await customer_writes(
        app, "lena-2", LENA, "Lena Fischer", "Could it have been lost?", team.queue_id
    )
    await expect(view.locator(".timeline")).to_contain_text("Could it have been lost?")
    await expect(panel).to_have_attribute("data-answering", str(again))
    await expect(panel).to_have_attribute("data-state", "ready")
    assert len(requests) == 1
    await expect(panel.locator(".suggestion")).to_have_count(3)
    assert await page.get_by_label("Reply to the customer").bounding_box() == box_before

    # Folded away and back by keyboard: the reply box does not move for good, nothing is
    # asked again.
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(panel.locator(".suggestions-body")).to_be_hidden()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(panel.locator(".suggestion")).to_have_count(3)
    assert await page.get_by_label("Reply to the customer").bounding_box() == box_before
    assert len(requests) == 1

    # The article's public page as a link, into the reply box.
    textarea = page.get_by_label("Reply to the customer")
    await article.get_by_role("button", name="Send the link to the article Delivery times").click()
    await expect(textarea).to_have_value(re.compile(r"^http://\S+/help/delivery-times\?lang=en$"))
    await expect(article).to_have_attribute("data-chosen", "true")
    await textarea.fill("")
    await expect(article).to_have_attribute("data-chosen", "false")

    # Insert: the text filled for Lena, the order she wrote about (the ERP lists it as hers;
    # her newer order is not the one she asked about); clearing the box forgets it.
    insert = card.locator(".suggestion-insert")
    await expect(insert).to_have_accessible_name(re.compile(r"^Insert suggestion \d: "))
    await insert.click()
    await expect(textarea).to_have_value(FOR_LENA)
    await expect(textarea).to_be_focused()
    await expect(card).to_have_attribute("data-chosen", "true")
    await expect(page.locator(".canned-note")).to_be_hidden()
    await textarea.fill("")
    await expect(card).to_have_attribute("data-chosen", "false")
    await insert.press("Enter")
    await expect(textarea).to_have_value(FOR_LENA)
    await expect(card).to_have_attribute("data-chosen", "true")
    await assert_controls_labelled(page)
    await page.screenshot(path=artifacts / "suggestions.png")

    # Anna changes a word and sends.
    await textarea.fill(EDITED)
    await page.keyboard.press("Control+Enter")
    await expect(view.locator(".item-out", has_text="this morning")).to_have_count(1)
    await expect(textarea).to_have_value("")
    await expect(card).to_have_attribute("data-chosen", "false")

    # The server counted it: each shown twice (once per question), the article's link and
    # the answer inserted (the answer inserted twice for one reply counts once), the answer
    # sent, the others ignored (the link left the box before the reply went).
    assert await events_of(app, lena_id) == Counter(
        {
            ("shown", suggestion_id): 2,
            ("shown", canned_id): 2,
            ("shown", article_id): 2,
            ("inserted", article_id): 1,
            ("inserted", suggestion_id): 1,
            ("sent", suggestion_id): 1,
            ("ignored", canned_id): 1,
            ("ignored", article_id): 1,
        }
    )
    stats = await tom.get("/api/v1/suggestions/stats?days=7")
    assert stats.status == 200, await stats.text()
    assert await stats.json() == {
        "days": 7,
        "shown": 6,
        "inserted": 2,
        "sent": 1,
        "edited": 0,
        "ignored": 2,
        "replies": 2,
        "used_share": 0.5,
    }

    # The monitor: the week's figures for Tom.
    monitor = await open_as(browsing, tom, "/monitor/")
    figures = monitor.locator("#suggestions-panel")
    await expect(figures).to_be_visible()
    await expect(figures.get_by_role("heading")).to_have_text("Suggestions (7 days)")
    await expect(figure(monitor, "used-share")).to_have_text("50%")
    await expect(figures.locator('[data-field="used-share"]')).to_contain_text("of 2 replies")
    await expect(figure(monitor, "sent")).to_have_text("1")
    await expect(figure(monitor, "edited")).to_have_text("0")
    await expect(figure(monitor, "ignored")).to_have_text("2")
    await expect(figures.locator('[data-field="ignored"]')).to_contain_text("of 6 shown")
    await monitor.screenshot(path=artifacts / "suggestions-monitor.png")

    # Tom never wants Anna's answer to Max suggested again.
    console = await open_as(browsing, tom, f"/console/#c={max_id}")
    answer = console.locator(".item-out", has_text="left our warehouse yesterday")
    settings = answer.locator(".suggestion-curation")
    await settings.locator("summary").click()
    await settings.get_by_label("Never suggest").check()
    await expect(settings).to_have_attribute("data-excluded", "true")
    await expect(settings.locator("summary")).to_have_text("Never suggested")
    await expect(settings.get_by_label("Never suggest")).to_be_enabled()
    await console.screenshot(path=artifacts / "suggestions-curation.png")
    async with app[SESSIONS]() as session:
        doc = await session.get(SuggestionDoc, suggestion_id)
        assert doc is not None
        assert doc.excluded
    await assert_controls_labelled(console)
    # In Lena's conversation it is suggested no more; the canned response and article are.
    await console.evaluate(f"location.hash = '#c={lena_id}'")
    tom_panel = console.locator(f'[data-conversation-id="{lena_id}"] .suggestions')
    await expect(tom_panel).to_have_attribute("data-state", "ready")
    await expect(tom_panel.locator(".suggestion")).to_have_count(2)
    await expect(tom_panel.locator('.suggestion[data-kind="reply"]')).to_have_count(0)
    # A question nothing answers: the empty state.
    kim_id, _ = await customer_writes(
        app, "kim-1", "kim@example.com", "Kim Lee", "Do you sell gift vouchers?", team.queue_id
    )
    await console.evaluate(f"location.hash = '#c={kim_id}'")
    kim_panel = console.locator(f'[data-conversation-id="{kim_id}"] .suggestions')
    await expect(kim_panel).to_have_attribute("data-state", "empty")
    await expect(kim_panel).to_contain_text("Nothing the team has answered before matches")
    await console.screenshot(path=artifacts / "suggestions-empty.png")

    assert [watch.console_errors for watch in browsing.watches] == [[], [], []]


def figure(page: Page, field: str) -> Locator:
    """A figure's value on the monitor."""
    return page.locator(f'#suggestions-panel [data-field="{field}"] dd').first
