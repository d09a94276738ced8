"""The event bus: ids of what changed, published after commit.

In-process subscribers always get events. On PostgreSQL a transaction's events are also sent
with pg_notify just before it commits, so they reach other server processes exactly when (and
only if) it commits; the payload carries ids only and the tables stay the truth. One
notification per transaction (a JSON list of its events), more only when the list would pass
PostgreSQL's 8,000-byte payload limit: a round trip per event was a large share of an ingest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.event_types import RESYNC, declared
from core.logfields import log_fields

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "omnicrm_events"
# Identifies this server process, so it can skip its own notifications (delivered locally).
PROCESS_ID = secrets.token_hex(8)
_PENDING_KEY = "omnicrm.pending_events"
_BUS_KEY = "omnicrm.event_bus"


@dataclass(frozen=True)
class Event:
    """Something changed: its type, the ids involved and a few small labels (no content).

    `type` is one of the names declared in `core.event_types` (emit refuses any other)."""

    type: str
    ids: dict[str, int]
    labels: dict[str, str] = field(default_factory=dict)
    origin: str = PROCESS_ID

    @property
    def origin_is_local(self) -> bool:
        return self.origin == PROCESS_ID

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type, "ids": self.ids, "labels": self.labels, "origin": self.origin}
        )

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Event:
        return cls(
            type=str(data["type"]),
            ids={str(k): int(v) for k, v in data["ids"].items()},
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            origin=str(data["origin"]),
        )


# PostgreSQL refuses a notification payload of 8,000 bytes or more.
MAX_PAYLOAD = 7_900


def notification_payloads(events: list[Event]) -> list[str]:
    """`events` as few JSON lists as fit in a notification each (in order)."""
    payloads: list[str] = []
    batch: list[str] = []
    size = 2
    for event in events:
        encoded = event.to_json()
        if batch and size + len(encoded.encode()) + 1 > MAX_PAYLOAD:
            payloads.append("[" + ",".join(batch) + "]")
            batch, size = [], 2
        batch.append(encoded)
        size += len(encoded.encode()) + 1
    if batch:
        payloads.append("[" + ",".join(batch) + "]")
    return payloads


def events_of_payload(raw: str) -> list[Event]:
    """The events of a notification: a list (one per transaction), or one event as a server
    of an earlier version sends it during a rolling upgrade. ValueError if malformed."""
    data = json.loads(raw)
    try:
        return [Event.from_data(item) for item in (data if isinstance(data, list) else [data])]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an event: {exc}") from exc


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of committed events to in-process subscribers."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._listeners: list[Listener] = []
        self._queue_size = queue_size

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` synchronously for every event; it must be quick and never raise."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed", extra=log_fields(event_type=event.type))
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A stalled subscriber must not stall ingest; it is told to resync instead.
                with suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(Event(RESYNC, {}))


def session_info(bus: EventBus) -> dict[str, Any]:
    """`info` for a sessionmaker whose sessions publish to `bus` after commit."""
    return {_BUS_KEY: bus}


async def emit(session: AsyncSession, event: Event) -> None:
    """Queue `event` for publication when the session's transaction commits.

    UnknownEventType if its type is not declared in `core.event_types`: a misspelt type is an
    error where it is emitted, not a new type nobody listens to."""
    declared(event.type)
    session.info.setdefault(_PENDING_KEY, []).append(event)


@sa_event.listens_for(Session, "before_commit")
def _notify_before_commit(session: Session) -> None:
    """PostgreSQL: the transaction's events to other processes, in the transaction itself."""
    if session.in_nested_transaction() or session.bind is None:
        return
    if session.bind.dialect.name != "postgresql":
        return
    for payload in notification_payloads(session.info.get(_PENDING_KEY, [])):
        session.execute(_NOTIFY, {"payload": payload})


# Built once: a statement made per commit costs its construction and cache key every time.
_NOTIFY = select(func.pg_notify(NOTIFY_CHANNEL, bindparam("payload")))


@sa_event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released; the real commit is still to come
    pending: list[Event] = session.info.pop(_PENDING_KEY, [])
    bus: EventBus | None = session.info.get(_BUS_KEY)
    if bus is not None:
        for event in pending:
            bus.publish(event)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING_KEY, None)


async def listen_postgresql(dsn: str, bus: EventBus, stop: asyncio.Event) -> None:
    """Relay other processes' notifications to `bus` until `stop` is set; reconnects."""
    import asyncpg

    delay = 0.5
    while not stop.is_set():
        try:
            connection = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("event listener cannot connect, retrying", extra=log_fields(error=str(exc)))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30)
            continue
        delay = 0.5

        def relay(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                events = events_of_payload(payload)
            except ValueError:
                log.warning(
                    "ignoring malformed notification", extra=log_fields(payload=payload[:200])
                )
                return
            for event in events:
                if event.origin != PROCESS_ID:
                    bus.publish(event)

        try:
            await connection.add_listener(NOTIFY_CHANNEL, relay)
            # Anything may have been missed while disconnected: tell subscribers to reload.
            bus.publish(Event(RESYNC, {}))
            while not stop.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 15)
                if not stop.is_set():
                    # A silent network failure only shows when the connection is used.
                    await connection.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("event listener lost its connection", extra=log_fields(error=str(exc)))
        finally:
            with suppress(Exception):
                await connection.close(timeout=2)
