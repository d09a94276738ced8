"""Automatic order-status answers (erp_bridge/auto_answers.py) over the embedded ERP: only for
queues that turn them on, only about the sender's own orders, once per message whatever runs
them, in the contact's language, and never when the ERP cannot say."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.audit import CLI, SYSTEM
from core.conversations import list_interactions
from core.db import SessionFactory
from core.events import EventBus
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    OutboxItem,
    OutboxStatus,
    Queue,
    Role,
    utcnow,
)
from core.operators import create_operator
from core.settings import Settings
from erp_bridge.auto_answers import (
    ANSWERED,
    ANSWERED_BEFORE,
    ERP_UNAVAILABLE,
    FLAG,
    MARKER,
    NOT_THEIRS,
    OPERATOR_ANSWERED,
    REFUSED,
    OrderStatusResponder,
    order_numbers,
)
from erp_bridge.base import ErpAdapter, ErpUnavailable
from erp_bridge.embedded import EmbeddedErp
from erp_bridge.embedded_data import OrderData, save_order
from routing.setup import update_queue
from tests.waiting import eventually
from web.app import create_app, order_status_answers

pytestmark = pytest.mark.both_databases  # tests/conftest.py


MAX = "max.mueller@example.de"
OLGA = "olga@example.ru"
STRANGER = "someone.else@example.com"
TRACKING = "https://track.example/10330"


async def make_queue(sessions: SessionFactory, *, answers: bool = True) -> int:
    async with sessions() as session, session.begin():
        queue = Queue(name=f"orders-{answers}", config={"auto_order_status": answers})
        session.add(queue)
        await session.flush()
        return queue.id


async def write(
    sessions: SessionFactory,
    queue_id: int,
    text: str,
    *,
    email: str = MAX,
    external_id: str | None = None,
    language: str | None = None,
) -> tuple[int, int]:
    """A customer's email in the queue: (conversation id, interaction id)."""
    async with sessions() as session, session.begin():
        arrived = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=external_id or f"<{email}-{text[:20]}@example>",
                addresses=[Address(IdentityKind.EMAIL, email)],
                display_name=email.split("@")[0],
                subject="My order",
                text=text,
                queue_id=queue_id,
                language=language,
            ),
        )
        return arrived.conversation_id, arrived.interaction_id


async def orders(sessions: SessionFactory) -> datetime:
    """Max's shipped order 10330 and a stranger's 20440 (both wrote once before, through the
    API channel: their email conversations are new). Dated from the suite's clock (it may
    run years from today); when 10330 was shipped."""
    now = utcnow()
    shipped_at = now - timedelta(days=2)
    async with sessions() as session, session.begin():
        for email in (MAX, STRANGER):
            await ingest(
                session,
                InboundEvent(
                    channel="api",
                    external_id=f"hello-{email}",
                    addresses=[Address(IdentityKind.EMAIL, email)],
                    text="hello",
                ),
            )
        for number, customer, status in (
            ("10330", MAX, "shipped"),
            ("20440", STRANGER, "processing"),
        ):
            await save_order(
                session,
                CLI,
                OrderData.model_validate(
                    {
                        "number": number,
                        "customer": customer,
                        "ordered_at": (now - timedelta(days=5)).isoformat(),
                        "status": status,
                        "currency": "EUR",
                        "total": "398.00",
                        "tracking_number": f"T{number}",
                        "tracking_url": f"https://track.example/{number}",
                        "carrier": "DHL",
                        "shipped_at": shipped_at.isoformat() if status == "shipped" else None,
                    }
                ),
            )
    return shipped_at


def responder(
    sessions: SessionFactory,
    adapter: ErpAdapter | None,
    bus: EventBus | None = None,
    poll_seconds: float = 0.05,
) -> OrderStatusResponder:
    async def current() -> ErpAdapter | None:
        return adapter

    return OrderStatusResponder(sessions, bus, current, poll_seconds=poll_seconds)


async def answers(sessions: SessionFactory, conversation_id: int) -> list[Interaction]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Interaction)
                .where(
                    Interaction.conversation_id == conversation_id,
                    Interaction.direction == Direction.OUT,
                )
                .order_by(Interaction.id)
            )
        )


async def marker(sessions: SessionFactory, interaction_id: int) -> dict[str, Any] | None:
    async with sessions() as session:
        message = await session.get(Interaction, interaction_id)
        assert message is not None
        found = message.meta.get(MARKER)
        assert found is None or isinstance(found, dict)
        return found


async def outbox(sessions: SessionFactory, conversation_id: int) -> list[OutboxItem]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(OutboxItem).where(OutboxItem.conversation_id == conversation_id)
            )
        )


# --- finding order numbers ---------------------------------------------------------------------


def test_order_numbers_are_found_by_the_erps_pattern_at_most_three_once_each() -> None:
    text = "Orders 10330, 10331 and 10330 again, also 10332 and 10333; phone 123"
    assert order_numbers(text, r"\b\d{5}\b") == ["10330", "10331", "10332"]
    assert order_numbers("SO-1 and S00042", r"S\d{5}") == ["S00042"]
    # Only the start of a very long text is read.
    assert order_numbers("x" * 5000 + " 10330", r"\b\d{5}\b") == []
    # A pattern RE2 cannot run (a lookahead, fine for Python's re) finds nothing.
    assert order_numbers("10330", r"(?=1)\d{5}") == []


# --- the answers ------------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_a_queue_without_the_flag_gets_no_automatic_answers(
    sessions: SessionFactory,
) -> None:
    queue_id = await make_queue(sessions, answers=False)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Where is 10330?")
    erp = EmbeddedErp(sessions)
    assert await responder(sessions, erp).run_once() == 0
    assert await answers(sessions, conversation_id) == []
    assert await marker(sessions, message_id) is None


@pytest.mark.sqlite_only
async def test_a_queue_that_starts_asking_for_answers_is_answered_at_once(
    sessions: SessionFactory, bus: EventBus
) -> None:
    """Which queues ask is kept between messages; the queue's change is heard at once."""
    queue_id = await make_queue(sessions, answers=False)
    await orders(sessions)
    worker = responder(sessions, EmbeddedErp(sessions), bus)
    conversation_id, _ = await write(sessions, queue_id, "Where is 10330?")
    assert await worker.run_once() == 0
    async with sessions() as session, session.begin():
        await update_queue(session, CLI, queue_id, config={FLAG: True})
    assert await worker.run_once() == 1
    assert len(await answers(sessions, conversation_id)) == 1


@pytest.mark.sqlite_only
async def test_the_owner_gets_one_automatic_answer_with_status_and_tracking(
    sessions: SessionFactory,
) -> None:
    queue_id = await make_queue(sessions)
    shipped_at = await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Hi, where is order 10330?")
    async with sessions() as session, session.begin():
        anna = await create_operator(
            session, CLI, email="anna@example.com", name="Anna", role=Role.OPERATOR, password=None
        )
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(assignee_id=anna.id)
        )

    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 1

    [reply] = await answers(sessions, conversation_id)
    day = shipped_at.strftime("%B ") + str(shipped_at.day)
    if shipped_at.year != utcnow().year:
        day += f", {shipped_at.year}"
    assert reply.text.splitlines() == [
        f"Order 10330: shipped on {day}.",
        f"Tracking: {TRACKING}",
        "",
        "This is an automatic answer; an operator will get back to you if you need anything else.",
    ]
    assert reply.meta.get("automatic") is True
    assert reply.operator_id is None
    assert reply.subject == "Re: My order"
    [item] = await outbox(sessions, conversation_id)
    assert item.status == OutboxStatus.QUEUED
    assert item.recipient == MAX
    assert item.interaction_id == reply.id
    # In the timeline as operators read it.
    async with sessions() as session:
        timeline, _ = await list_interactions(session, SYSTEM, conversation_id)
    assert [(i.direction, i.id) for i in timeline][-1] == (Direction.OUT, reply.id)
    # The conversation is as it was: open, Anna's, no first response, still awaiting a person.
    async with sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        assert conversation.status == ConversationStatus.OPEN
        assert conversation.assignee_id == anna.id
        assert conversation.first_response_at is None
        assert conversation.last_outbound_at is None
    found = await marker(sessions, message_id)
    assert found is not None
    assert (found["outcome"], found["orders"], found["reply"]) == (ANSWERED, ["10330"], reply.id)

    # Nothing is looked at twice; the same order asked again in the thread is not repeated.
    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 0
    _, again = await write(sessions, queue_id, "> where is order 10330?\nThanks!")
    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 1
    assert len(await answers(sessions, conversation_id)) == 1
    assert (await marker(sessions, again) or {})["outcome"] == ANSWERED_BEFORE


@pytest.mark.sqlite_only
async def test_someone_elses_order_and_an_unknown_number_get_no_answer(
    sessions: SessionFactory,
) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Status of 20440 and 99999?")
    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 1
    assert await answers(sessions, conversation_id) == []
    assert await outbox(sessions, conversation_id) == []
    found = await marker(sessions, message_id)
    assert found is not None
    assert (found["outcome"], found["orders"]) == (NOT_THEIRS, ["20440", "99999"])


@pytest.mark.sqlite_only
async def test_a_down_erp_gives_no_answer_and_no_crash(
    sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Where is 10330?")
    erp = EmbeddedErp(sessions)

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ErpUnavailable("connection refused")

    erp.do_get_order = down  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="erp_bridge.auto_answers"):
        assert await responder(sessions, erp).run_once() == 1
    assert await answers(sessions, conversation_id) == []
    assert (await marker(sessions, message_id) or {})["outcome"] == ERP_UNAVAILABLE
    assert any("the ERP did not answer" in record.getMessage() for record in caplog.records)

    # No ERP at all: nothing is answered either.
    other_id, _ = await write(sessions, queue_id, "And 10330?", email="x@example.com")
    assert await responder(sessions, None).run_once() == 1
    assert await answers(sessions, other_id) == []


async def test_run_twice_or_by_two_workers_at_once_the_answer_goes_out_once(
    sessions: SessionFactory,
) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Where is 10330?")
    erp = EmbeddedErp(sessions)
    first, second = responder(sessions, erp), responder(sessions, EmbeddedErp(sessions))
    # Both read the message before either answers (two processes at once).
    looked = await asyncio.gather(first.run_once(), second.run_once())
    assert sum(looked) >= 1
    # ... and again, as after a restart.
    await first.run_once()
    assert await responder(sessions, erp).run_once() == 0
    assert len(await answers(sessions, conversation_id)) == 1
    assert len(await outbox(sessions, conversation_id)) == 1
    assert (await marker(sessions, message_id) or {})["outcome"] == ANSWERED


async def test_two_workers_that_both_decided_claim_the_message_once(
    sessions: SessionFactory,
) -> None:
    """The claim itself: both workers asked the ERP and hold the same answer; exactly one
    commits it."""
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, _ = await write(sessions, queue_id, "Where is 10330?")
    erp = EmbeddedErp(sessions)
    workers = [responder(sessions, erp), responder(sessions, erp)]
    async with sessions() as session:
        [candidate] = await workers[0]._candidates(session)
    decision = await workers[0]._decide(candidate, erp)
    outcomes = await asyncio.gather(*(worker._record(candidate, decision) for worker in workers))
    assert sorted(outcomes) == [False, True]
    assert len(await answers(sessions, conversation_id)) == 1
    assert len(await outbox(sessions, conversation_id)) == 1


@pytest.mark.sqlite_only
async def test_a_russian_customer_is_answered_in_russian(sessions: SessionFactory) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, _ = await write(
        sessions, queue_id, "Где заказ 30550?", email=OLGA, language="ru"
    )
    now = utcnow()
    async with sessions() as session, session.begin():
        await save_order(
            session,
            CLI,
            OrderData.model_validate(
                {
                    "number": "30550",
                    "customer": OLGA,
                    "ordered_at": (now - timedelta(days=9)).isoformat(),
                    "status": "delivered",
                    "currency": "RUB",
                    "total": "1500.00",
                    "tracking_number": "RU123",
                    "shipped_at": (now - timedelta(days=8)).isoformat(),
                    "delivered_at": (now - timedelta(days=6)).isoformat(),
                }
            ),
        )
    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 1
    [reply] = await answers(sessions, conversation_id)
    lines = reply.text.splitlines()
    assert lines[0].startswith("Заказ 30550: доставлен ")
    assert lines[1] == "Отслеживание: RU123"
    assert lines[-1].startswith("Это автоматический ответ")


@pytest.mark.sqlite_only
async def test_a_reply_the_channel_would_refuse_is_not_sent(sessions: SessionFactory) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Where is 10330?")
    async with sessions() as session, session.begin():
        await session.execute(
            update(Identity).where(Identity.address == MAX).values(opted_out_at=utcnow())
        )
    assert await responder(sessions, EmbeddedErp(sessions)).run_once() == 1
    assert await answers(sessions, conversation_id) == []
    assert await outbox(sessions, conversation_id) == []
    assert (await marker(sessions, message_id) or {})["outcome"] == REFUSED


@pytest.mark.sqlite_only
async def test_an_operator_who_answered_first_is_left_to_it(sessions: SessionFactory) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    conversation_id, message_id = await write(sessions, queue_id, "Where is 10330?")
    worker = responder(sessions, EmbeddedErp(sessions))
    async with sessions() as session:
        [candidate] = await worker._candidates(session)
    decision = await worker._decide(candidate, EmbeddedErp(sessions))
    async with sessions() as session, session.begin():
        session.add(
            Interaction(
                conversation_id=conversation_id,
                contact_id=candidate.contact_id,
                kind="message",
                direction=Direction.OUT,
                channel="email",
                text="Let me check.",
            )
        )
    assert await worker._record(candidate, decision) is True
    assert [reply.text for reply in await answers(sessions, conversation_id)] == ["Let me check."]
    assert (await marker(sessions, message_id) or {})["outcome"] == OPERATOR_ANSWERED


@pytest.mark.sqlite_only
async def test_the_worker_wakes_on_a_new_message_and_stops_when_asked(
    sessions: SessionFactory, bus: EventBus, settings: Settings
) -> None:
    queue_id = await make_queue(sessions)
    await orders(sessions)
    # Polling once an hour: only the event can wake it in time.
    worker = responder(sessions, EmbeddedErp(sessions), bus, poll_seconds=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)  # its first (empty) pass
    conversation_id, _ = await write(sessions, queue_id, "Where is 10330?")

    async def answered() -> bool:
        return len(await answers(sessions, conversation_id)) == 1

    await eventually(answered, "the automatic answer", within=10)
    stop.set()
    await asyncio.wait_for(task, 5)

    # The app runs it with its background workers only.
    assert order_status_answers in create_app(settings).cleanup_ctx
    assert order_status_answers not in create_app(settings, background_workers=False).cleanup_ctx
