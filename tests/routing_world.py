"""A small contact center for routing tests: queues, operators, arriving work, a clock.

The world keeps time with a `ManualClock`. Install it (`core.clock.using(world.clock)`, as the
`world` fixtures do) and everything core does (replies, status changes, audit, timers) happens
at the world's time, the same time its routing passes see: no test depends on today's date."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from core.audit import CLI, Actor
from core.clock import ManualClock
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, IngestResult, ingest
from core.models import (
    Conversation,
    IdentityKind,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    Role,
    RoutingDecision,
)
from core.operators import create_operator, set_presence
from core.queues import set_members
from routing.new_work import find_new_work
from routing.service import PassReport, RoutingOptions, run_pass
from routing.setup import create_queue

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
_serial = itertools.count(1)


def operator_actor(operator_id: int) -> Actor:
    return Actor(f"operator-{operator_id}", Role.OPERATOR, operator_id)


@dataclass
class World:
    sessions: SessionFactory
    clock: ManualClock = field(default_factory=lambda: ManualClock(START))
    options: RoutingOptions = field(default_factory=RoutingOptions)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @now.setter
    def now(self, at: datetime) -> None:
        self.clock.set(at)

    def tick(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    async def queue(self, name: str, members: list[int] = (), **config: Any) -> int:  # type: ignore[assignment]
        async with self.sessions() as session, session.begin():
            queue = await create_queue(session, CLI, name=name, config=dict(config))
            if members:
                await set_members(session, CLI, queue.id, list(members))
            return queue.id

    async def operator(
        self,
        name: str,
        *,
        capacity: Mapping[str, int] | None = None,
        presence: Presence = Presence.AVAILABLE,
        skills: Mapping[str, int] | None = None,
        languages: Mapping[str, int] | None = None,
        total_capacity: int | None = None,
    ) -> int:
        async with self.sessions() as session, session.begin():
            operator = await create_operator(
                session,
                CLI,
                email=f"{name.lower()}-{next(_serial)}@example.com",
                name=name,
                role=Role.OPERATOR,
                password=None,
                skills=skills,
                languages=languages,
                capacity=capacity if capacity is not None else {"messaging": 5, "email": 20},
                total_capacity=total_capacity,
            )
            await set_presence(session, operator, presence, None, at=self.now)
            return operator.id

    async def ready(self, operator_id: int, capacity: Mapping[str, int] | None = None) -> None:
        """An existing operator (e.g. a signed-in test user) becomes available with capacity."""
        async with self.sessions() as session, session.begin():
            operator = await session.get(Operator, operator_id)
            assert operator is not None
            operator.capacity = dict(capacity or {"messaging": 5, "email": 20})
            await set_presence(session, operator, Presence.AVAILABLE, None, at=self.now)

    async def presence(
        self, operator_id: int, presence: Presence, reason: str | None = None
    ) -> None:
        async with self.sessions() as session, session.begin():
            operator = await session.get(Operator, operator_id)
            assert operator is not None
            await set_presence(session, operator, presence, reason, at=self.now)

    async def arrive(
        self,
        *,
        channel: str = "api",
        queue_id: int | None = None,
        text: str = "Hello, I need help",
        subject: str = "",
        sender: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> IngestResult:
        serial = next(_serial)
        address = sender or f"customer{serial}@example.com"
        async with self.sessions() as session, session.begin():
            result = await ingest(
                session,
                InboundEvent(
                    channel=channel,
                    external_id=f"msg-{serial}",
                    addresses=[Address(IdentityKind.EMAIL, address)],
                    subject=subject,
                    text=text,
                    queue_id=queue_id,
                    meta=meta or {},
                    occurred_at=self.now,
                ),
            )
            # The conversation arrived at the world's time, not the machine's.
            await session.execute(
                update(Conversation)
                .where(Conversation.id == result.conversation_id)
                .values(created_at=self.now, updated_at=self.now)
            )
            return result

    async def route(self) -> PassReport:
        """One pass the way the engine runs it, at the world's clock."""
        async with self.sessions() as session:
            new_work = await find_new_work(session)
        async with self.sessions() as session, session.begin():
            return await run_pass(session, self.now, self.options, new_work)

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self.sessions() as session:
            found = await session.get(Conversation, conversation_id)
            assert found is not None
            return found

    async def pending_offers(self) -> list[Offer]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(Offer).where(Offer.status == OfferStatus.PENDING).order_by(Offer.id)
                )
            )

    async def log(self, conversation_id: int) -> list[RoutingDecision]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(RoutingDecision)
                    .where(RoutingDecision.conversation_id == conversation_id)
                    .order_by(RoutingDecision.id)
                )
            )

    async def load(self, operator_id: int) -> int:
        async with self.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).where(
                        Conversation.assignee_id == operator_id,
                        Conversation.status.in_(["open", "pending"]),
                    )
                )
                or 0
            )
