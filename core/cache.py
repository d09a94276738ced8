"""What requests read often and admins change seldom, kept per process: `EventCache`.

A value is read from the database once and then kept, until an event says it changed (the
events are the ones the change announces when it commits; on PostgreSQL they reach every
server process) or `ttl_seconds` pass (for a change no event announces to this process: the
CLI beside a SQLite server). A read that began before a change is not kept after it (a
generation counter), so a stale value never outlives the event that outdated it. A
`resync` (the process's listener lost its connection and may have missed events) empties every
cache, whatever its events.

Users: the web forms public posts read (`core.forms.FormCache`), the channel accounts
webhooks authenticate with (`web/routes_channels.py`) and the queues that ask for automatic
order answers (`erp_bridge/auto_answers.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Hashable
from typing import Generic, TypeVar

from core.event_types import RESYNC
from core.events import Event, EventBus

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class EventCache(Generic[K, V]):
    """Values by key, loaded on a miss, emptied by any of `events`.

    What `load` answers is kept only when it is not None, so a flood of requests for things
    that do not exist (made-up form slugs or account names) neither fills the cache nor hides
    one created later; at most `max_entries` are kept (the cache starts afresh beyond).
    """

    def __init__(
        self,
        bus: EventBus,
        events: Collection[str],
        *,
        ttl_seconds: float = 30.0,
        max_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = frozenset(events)
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._values: dict[K, tuple[V, float]] = {}
        # Counts the changes heard of, so a read that began before one is not kept after it.
        self._generation = 0
        bus.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type in self._events or event.type == RESYNC:
            self._generation += 1
            self._values.clear()

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value of `key`, from the cache when it can, else from `load`."""
        kept = self._values.get(key)
        now = self._clock()
        if kept is not None and now - kept[1] < self._ttl:
            return kept[0]
        generation = self._generation
        value = await load()
        if value is not None and generation == self._generation:
            if len(self._values) >= self._max_entries:
                self._values.clear()
            self._values[key] = (value, now)
        return value
