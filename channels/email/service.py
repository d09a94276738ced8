"""The email channel's inbound side: one IMAP poller per active mailbox, kept in step with
the mailbox table.

A mailbox created, edited or deleted (events "mailbox.created/updated/deleted", from this
process or, on PostgreSQL, another one) restarts or stops its poller; a "resync" (events may
have been missed) compares every running poller with the table. Passwords are compared by a
digest of what they decrypt to, since each encryption of the same password differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select

from channels.email.imap import MailboxPoller, PollerOptions
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.events import Event, EventBus
from core.ingest import IngestPolicy
from core.logfields import log_fields
from core.mailboxes import SECRET_FIELDS
from core.models import Mailbox
from core.storage import AttachmentStore

log = logging.getLogger(__name__)

MAILBOX_EVENTS = frozenset({"mailbox.created", "mailbox.updated", "mailbox.deleted"})
# A resync compares these settings of each mailbox with what its poller was started with.
_POLLER_SETTINGS = (
    "imap_host",
    "imap_port",
    "imap_tls",
    "imap_user",
    "imap_password",
    "imap_folder",
    "after_import",
    "move_to_folder",
    "use_idle",
    "poll_seconds",
    "backfill_days",
)


class EmailChannel:
    """Starts, restarts and stops the mailboxes' pollers; `statuses` is for health."""

    def __init__(
        self,
        sessions: SessionFactory,
        bus: EventBus,
        store: AttachmentStore,
        policy: IngestPolicy,
        options: PollerOptions | None = None,
        *,
        cipher: CredentialCipher,
        stop_timeout_seconds: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._bus = bus
        self._store = store
        self._policy = policy
        self._options = options or PollerOptions()
        self._stop_timeout = stop_timeout_seconds
        self._pollers: dict[int, tuple[MailboxPoller, asyncio.Task[None], tuple[Any, ...]]] = {}
        # Mailbox ids to look at again; None means all of them.
        self._changes: asyncio.Queue[int | None] = asyncio.Queue()
        self._manager: asyncio.Task[None] | None = None
        self._listening = False

    async def start(self) -> None:
        """Start a poller for every active mailbox, and follow changes to the mailboxes."""
        if self._manager is not None:
            return
        if not self._listening:
            # The bus cannot drop a listener; a stopped channel's listener ignores events.
            self._bus.add_listener(self._on_event)
            self._listening = True
        await self._reconcile_all()
        self._manager = asyncio.create_task(self._follow_changes(), name="email-channel")

    async def stop(self) -> None:
        """Stop every poller (each finishes the message in hand) and stop following changes."""
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await manager
        await asyncio.gather(*(self._stop_poller(mailbox_id) for mailbox_id in list(self._pollers)))

    def statuses(self) -> dict[int, dict[str, Any]]:
        """Per mailbox id: its poller's state, counters and last error."""
        return {
            mailbox_id: poller.status.as_dict()
            for mailbox_id, (poller, _task, _settings) in sorted(self._pollers.items())
        }

    def pollers(self) -> dict[int, MailboxPoller]:
        return {mailbox_id: entry[0] for mailbox_id, entry in self._pollers.items()}

    def _on_event(self, event: Event) -> None:
        if self._manager is None:
            return
        if event.type in MAILBOX_EVENTS:
            self._changes.put_nowait(event.ids.get("mailbox"))
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
                    "could not apply a mailbox change", extra=log_fields(mailbox_id=changed)
                )

    async def _restart(self, mailbox_id: int) -> None:
        await self._stop_poller(mailbox_id)
        async with self._sessions() as session:
            mailbox = await session.get(Mailbox, mailbox_id)
        if mailbox is not None and mailbox.active:
            self._start_poller(mailbox)

    async def _reconcile_all(self) -> None:
        async with self._sessions() as session:
            active = {
                mailbox.id: mailbox
                for mailbox in await session.scalars(
                    select(Mailbox).where(Mailbox.active.is_(True))
                )
            }
        for mailbox_id, (_poller, task, settings) in list(self._pollers.items()):
            mailbox = active.get(mailbox_id)
            if mailbox is None or task.done() or self._settings_of(mailbox) != settings:
                await self._stop_poller(mailbox_id)
        for mailbox_id, mailbox in active.items():
            if mailbox_id not in self._pollers:
                self._start_poller(mailbox)

    def _start_poller(self, mailbox: Mailbox) -> None:
        poller = MailboxPoller(
            self._sessions,
            mailbox.id,
            self._store,
            self._policy,
            self._options,
            cipher=self._cipher,
        )
        task = asyncio.create_task(poller.run(), name=f"email-poller-{mailbox.id}")
        self._pollers[mailbox.id] = (poller, task, self._settings_of(mailbox))

    async def _stop_poller(self, mailbox_id: int) -> None:
        entry = self._pollers.pop(mailbox_id, None)
        if entry is None:
            return
        poller, task, _settings = entry
        poller.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), self._stop_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception(
                "an email poller ended with an error", extra=log_fields(mailbox_id=mailbox_id)
            )

    def _settings_of(self, mailbox: Mailbox) -> tuple[Any, ...]:
        return tuple(
            self._cipher.fingerprint(getattr(mailbox, name))
            if name in SECRET_FIELDS
            else getattr(mailbox, name)
            for name in _POLLER_SETTINGS
        )
