"""The poller supervisor: one poller per enabled account of every channel that polls, kept in
step with the `channel_account` table.

The registry says which channels exist; a channel whose `poller(account, services)` answers a
`PollingAdapter` gets one per enabled account. An account created, changed, disabled or
enabled (events "channel_account.created/updated", from this process or, on PostgreSQL,
another one) restarts or stops its poller; a "resync" (events may have been missed) compares
every running poller with the table. A poller is restarted only when what it works with
changed (`core.channel_accounts.fingerprint_of`: settings, secrets as the clear text they
hold, queue), so re-encrypting a secret under a new key restarts nothing. Which process polls
an account is the pollers' own business (their advisory lock, channels/base.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from channels.base import ChannelServices, PollerStatus, PollingAdapter
from channels.registry import ChannelRegistry
from core.channel_accounts import fingerprint_of, view_without_secrets
from core.events import Event
from core.logfields import log_fields
from core.models import ChannelAccount

log = logging.getLogger(__name__)

ACCOUNT_EVENTS = frozenset({"channel_account.created", "channel_account.updated"})


class PollerSupervisor:
    """Starts, restarts and stops the pollers of every channel's accounts."""

    def __init__(
        self,
        registry: ChannelRegistry,
        services: ChannelServices,
        *,
        stop_timeout_seconds: float = 10.0,
    ) -> None:
        self._registry = registry
        self._services = services
        self._stop_timeout = stop_timeout_seconds
        self._pollers: dict[int, tuple[PollingAdapter, asyncio.Task[None], str]] = {}
        # Account ids to look at again; None means all of them.
        self._changes: asyncio.Queue[int | None] = asyncio.Queue()
        self._manager: asyncio.Task[None] | None = None
        self._listening = False

    async def start(self) -> None:
        """Start a poller for every enabled account that has one, and follow changes."""
        if self._manager is not None:
            return
        if not self._listening:
            # The bus cannot drop a listener; a stopped supervisor's listener ignores events.
            self._services.bus.add_listener(self._on_event)
            self._listening = True
        await self._reconcile_all()
        self._manager = asyncio.create_task(self._follow_changes(), name="poller-supervisor")

    async def stop(self) -> None:
        """Stop every poller (each finishes the item in hand) and stop following changes."""
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await manager
        await asyncio.gather(*(self._stop_poller(account_id) for account_id in list(self._pollers)))

    def statuses(self) -> list[PollerStatus]:
        """The running pollers' states and counters, by account id."""
        return [entry[0].status for _, entry in sorted(self._pollers.items())]

    def pollers(self) -> dict[int, PollingAdapter]:
        """The running pollers by account id."""
        return {account_id: entry[0] for account_id, entry in self._pollers.items()}

    def _on_event(self, event: Event) -> None:
        if self._manager is None:
            return
        if event.type in ACCOUNT_EVENTS:
            self._changes.put_nowait(event.ids.get("channel_account"))
        elif event.type == "resync":
            self._changes.put_nowait(None)

    async def _follow_changes(self) -> None:
        while True:
            changed = await self._changes.get()
            try:
                if changed is None:
                    await self._reconcile_all()
                else:
                    await self._restart(changed)
            except Exception:
                # The database may be down; the next event or resync tries again.
                log.exception(
                    "could not apply a channel account change",
                    extra=log_fields(account_id=changed),
                )

    async def _restart(self, account_id: int) -> None:
        await self._stop_poller(account_id)
        async with self._services.sessions() as session:
            row = await session.get(ChannelAccount, account_id, populate_existing=True)
        if row is not None and row.enabled:
            self._start_poller(row)

    async def _reconcile_all(self) -> None:
        async with self._services.sessions() as session:
            enabled = {
                row.id: row
                for row in await session.scalars(
                    select(ChannelAccount).where(ChannelAccount.enabled.is_(True))
                )
            }
        for account_id, (_poller, task, fingerprint) in list(self._pollers.items()):
            row = enabled.get(account_id)
            if row is None or task.done() or self._fingerprint(row) != fingerprint:
                await self._stop_poller(account_id)
        for account_id, row in enabled.items():
            if account_id not in self._pollers:
                self._start_poller(row)

    def _fingerprint(self, row: ChannelAccount) -> str | None:
        channel = self._registry.get(row.channel)
        if channel is None:
            return None
        return fingerprint_of(row, self._services.cipher, channel.secret_fields)

    def _start_poller(self, row: ChannelAccount) -> None:
        channel = self._registry.get(row.channel)
        fingerprint = self._fingerprint(row)
        if channel is None or fingerprint is None:
            return  # an account of a channel this process does not run
        poller = channel.poller(view_without_secrets(row, channel.secret_fields), self._services)
        if poller is None:
            return
        task = asyncio.create_task(poller.run(), name=f"poller-{row.channel}-{row.id}")
        self._pollers[row.id] = (poller, task, fingerprint)

    async def _stop_poller(self, account_id: int) -> None:
        entry = self._pollers.pop(account_id, None)
        if entry is None:
            return
        poller, task, _fingerprint = entry
        poller.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), self._stop_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception("a poller ended with an error", extra=log_fields(account_id=account_id))
