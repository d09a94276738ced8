"""The IMAP poller: an email account's new mail brought into ingest, on `PollingAdapter`.

The base (channels/base.py) owns what every poller shares: one poller per account across
server processes (a PostgreSQL advisory lock), the account read afresh and its password
decrypted before each connection, backoff with jitter, supervision and health. What is
IMAP's is here, in `ImapPoller.do_serve`:

Exactly once, across restarts and outages:
- A cursor per account (UIDVALIDITY and the last UID handled, the account's `channel_cursor`
  row) is committed in the same transaction as the interactions (or quarantine rows) of the
  messages it covers: one transaction per fetched batch, a savepoint per message. After a
  restart, a dropped connection or a long outage the poller asks for every UID above it.
- A new or changed UIDVALIDITY re-scans the folder within the backfill window; messages
  seen before (the same Message-ID and content digest, see channels.email.inbound) are
  skipped and counted as duplicates.
- Messages are fetched in batches; flags and moves on the server (after_import) happen only
  after the batch's messages are committed.

New mail is noticed with IDLE where the server offers it, else by polling.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelServices, PollingAdapter, PollOptions
from channels.email.imap_client import (
    IDLE_RENEW_SECONDS,
    FetchedMessage,
    FolderState,
    ImapClient,
    ImapError,
    imap_date,
)
from channels.email.inbound import CHANNEL, ImportStatus, import_message
from channels.email.settings import SECRET_FIELDS, AfterImport, EmailSettings
from core import quarantine
from core.channel_accounts import AccountView, load_cursor_state, save_cursor_state
from core.db import transaction
from core.logfields import log_fields
from core.models import utcnow

log = logging.getLogger(__name__)

# How each import counts in the poller's status (omnicrm_channel_items_total's outcome).
OUTCOMES = {
    ImportStatus.INGESTED: "stored",
    ImportStatus.DUPLICATE: "duplicate",
    ImportStatus.QUARANTINED: "quarantined",
}


# --- the cursor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where an account's import stands. During the first scan of a folder (a backfill),
    messages up to `backfill_until_uid` count only if they arrived on or after
    `backfill_since`; everything above was new when the scan began and always counts."""

    uidvalidity: int
    last_uid: int
    backfill_since: date | None = None
    backfill_until_uid: int | None = None

    @property
    def backfilling(self) -> bool:
        return self.backfill_until_uid is not None and self.last_uid < self.backfill_until_uid

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"uidvalidity": self.uidvalidity, "last_uid": self.last_uid}
        if self.backfilling and self.backfill_since is not None:
            state["backfill"] = {
                "since": self.backfill_since.isoformat(),
                "until_uid": self.backfill_until_uid,
            }
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cursor | None:
        """None for a state that is missing or not understood: the folder is scanned anew."""
        try:
            backfill = state.get("backfill")
            return cls(
                uidvalidity=int(state["uidvalidity"]),
                last_uid=int(state["last_uid"]),
                backfill_since=date.fromisoformat(backfill["since"]) if backfill else None,
                backfill_until_uid=int(backfill["until_uid"]) if backfill else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def reference_of(uidvalidity: int, uid: int) -> str:
    """Where a message is in an account's folder, as its quarantine row records it."""
    return f"{uidvalidity}:{uid}"


async def load_cursor(session: AsyncSession, account_id: int) -> Cursor | None:
    state = await load_cursor_state(session, CHANNEL, account_id)
    return Cursor.from_state(state) if state is not None else None


async def save_cursor(session: AsyncSession, account_id: int, cursor: Cursor) -> None:
    """Write the cursor in the caller's transaction. Within one UIDVALIDITY it only moves
    forward, even if a poller that lost its lock unnoticed still writes."""
    stored = await load_cursor(session, account_id)
    if (
        stored is not None
        and stored.uidvalidity == cursor.uidvalidity
        and stored.last_uid > cursor.last_uid
    ):
        return
    await save_cursor_state(session, CHANNEL, account_id, cursor.to_state())


# --- the poller -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapOptions:
    """IMAP tuning that is not per account; tests shorten the waits. Attachments larger than
    `max_attachment_bytes` (None: the `max_attachment_bytes` setting) keep their metadata
    only."""

    batch_size: int = 20
    command_timeout_seconds: float = 60.0
    idle_renew_seconds: float = IDLE_RENEW_SECONDS
    max_attachment_bytes: int | None = None
    ssl_context: ssl.SSLContext | None = None


class _BatchFailed(Exception):
    """A message of a batch imported without savepoints failed: the batch is rolled back
    and imported again with a savepoint per message."""


class ImapPoller(PollingAdapter):
    """Imports one email account's mail until stopped."""

    def __init__(
        self,
        account: AccountView,
        services: ChannelServices,
        options: PollOptions | None = None,
        *,
        imap: ImapOptions | None = None,
    ) -> None:
        super().__init__(account, services, options, secret_fields=SECRET_FIELDS)
        self.imap = imap or ImapOptions()
        self.max_attachment_bytes = (
            self.imap.max_attachment_bytes or services.settings.max_attachment_bytes
        )
        # Every outcome is reported from the start, 0 until it happens.
        for outcome in OUTCOMES.values():
            self.status.count(outcome, 0)

    async def do_serve(self) -> None:
        """One connection: catch up, then wait for new mail, until stopped or it fails."""
        mail = EmailSettings.model_validate(dict(self.account.settings))
        client = await ImapClient.connect(
            host=mail.imap_host,
            port=mail.imap_port,
            tls=mail.imap_tls,
            user=mail.imap_user,
            password=mail.imap_password,
            command_timeout_seconds=self.imap.command_timeout_seconds,
            ssl_context=self.imap.ssl_context,
        )
        try:
            folder = await client.select(mail.imap_folder)
            idle = mail.use_idle and client.has("IDLE")
            while not self.stop_signal.is_set():
                await self.check_lock()
                self.status.state = "syncing"
                await self._sync(client, mail, folder)
                await self.succeeded()
                if self.stop_signal.is_set():
                    break
                if idle:
                    self.status.state = "idle"
                    await client.idle(self.imap.idle_renew_seconds, self.stop_signal)
                else:
                    self.status.state = "polling"
                    await self.pause(mail.poll_seconds)
                    if not self.stop_signal.is_set():
                        await client.noop()
        finally:
            await client.logout()

    async def _sync(self, client: ImapClient, mail: EmailSettings, folder: FolderState) -> None:
        """Import everything above the cursor (after a backfill, if one is due)."""
        client.forget_new_mail()
        async with self.services.sessions() as session:
            cursor = await load_cursor(session, self.account.id)
        if cursor is None or cursor.uidvalidity != folder.uidvalidity:
            cursor = await self._begin_scan(client, mail, folder, cursor)
        if cursor.backfilling and cursor.backfill_since is not None:
            uids = await client.search(
                "UID",
                f"{cursor.last_uid + 1}:{cursor.backfill_until_uid}",
                "SINCE",
                imap_date(cursor.backfill_since),
            )
            cursor = await self._import(client, mail, cursor, uids)
            if self.stop_signal.is_set():
                return
            # Everything up to the scan's start is handled: what was older is out of window.
            cursor = replace(
                cursor,
                last_uid=max(cursor.last_uid, cursor.backfill_until_uid or 0),
                backfill_since=None,
                backfill_until_uid=None,
            )
            async with transaction(self.services.sessions) as session:
                await save_cursor(session, self.account.id, cursor)
        # "n:*" always includes the highest UID, even below n (RFC 3501 6.4.8).
        uids = [
            uid
            for uid in await client.search("UID", f"{cursor.last_uid + 1}:*")
            if uid > cursor.last_uid
        ]
        await self._import(client, mail, cursor, uids)

    async def _begin_scan(
        self,
        client: ImapClient,
        mail: EmailSettings,
        folder: FolderState,
        previous: Cursor | None,
    ) -> Cursor:
        """First sight of this folder (or of a new UIDVALIDITY): scan the backfill window."""
        if folder.uidnext is not None:
            horizon = folder.uidnext - 1
        else:
            horizon = max(await client.search("UID", "1:*"), default=0)
        if mail.backfill_days > 0:
            since = (utcnow() - timedelta(days=mail.backfill_days)).date()
            cursor = Cursor(folder.uidvalidity, 0, since, horizon)
        else:
            cursor = Cursor(folder.uidvalidity, horizon)
        log.info(
            "scanning an IMAP folder",
            extra=log_fields(
                account_id=self.account.id,
                account=self.account.name,
                uidvalidity=folder.uidvalidity,
                previous_uidvalidity=previous.uidvalidity if previous else None,
                backfill_days=mail.backfill_days,
            ),
        )
        async with transaction(self.services.sessions) as session:
            await save_cursor(session, self.account.id, cursor)
        return cursor

    async def _import(
        self, client: ImapClient, mail: EmailSettings, cursor: Cursor, uids: Sequence[int]
    ) -> Cursor:
        """Import `uids` in batches: each fetched batch in one transaction that moves the
        cursor past its last message (`_import_batch`), then marked or moved on the server."""
        for start in range(0, len(uids), self.imap.batch_size):
            if self.stop_signal.is_set():
                break
            batch = uids[start : start + self.imap.batch_size]
            fetched = await client.fetch(batch)
            cursor, done, failure = await self._import_batch(cursor, batch, fetched)
            await self._after_import(client, mail, done)
            if failure is not None:
                raise failure
        return cursor

    async def _import_batch(
        self, cursor: Cursor, uids: Sequence[int], fetched: Mapping[int, FetchedMessage]
    ) -> tuple[Cursor, list[int], Exception | None]:
        """Import `uids` in one transaction and commit the cursor moved past the last one
        imported with them: the cursor, the account and the events cost one round trip a
        batch, not one a message. A message that fails for a reason of the server's (storage,
        database) ends the batch: what came before it is committed and the failure returned,
        to be retried with backoff from that message. Returns the cursor, the UIDs stored
        (ingested or found stored) and that failure. A UID missing from `fetched` was expunged
        between SEARCH and FETCH: the cursor passes it.

        The batch is tried first without a savepoint per message (two round trips a message
        fewer); if a message fails, that attempt is rolled back whole and the batch imported
        again with a savepoint each, which keeps what came before the failing message."""
        try:
            return await self._import_in_transaction(cursor, uids, fetched, savepoints=False)
        except _BatchFailed:
            return await self._import_in_transaction(cursor, uids, fetched, savepoints=True)

    async def _import_in_transaction(
        self,
        cursor: Cursor,
        uids: Sequence[int],
        fetched: Mapping[int, FetchedMessage],
        *,
        savepoints: bool,
    ) -> tuple[Cursor, list[int], Exception | None]:
        done: list[int] = []
        statuses: list[ImportStatus] = []
        failure: Exception | None = None
        async with transaction(self.services.sessions) as session:
            # Read again for each batch: the target queue may have changed, and a disabled
            # account imports nothing more.
            current = await self.current(session)
            references = {uid: reference_of(cursor.uidvalidity, uid) for uid in uids}
            held = await quarantine.held_among(session, current.id, list(references.values()))
            for uid in uids:
                if self.stop_signal.is_set():
                    break
                message = fetched.get(uid)
                if message is not None:
                    savepoint = await session.begin_nested() if savepoints else None
                    try:
                        outcome = await import_message(
                            session,
                            current,
                            references[uid],
                            message.raw,
                            self.services.store,
                            self.services.policy,
                            received_at=message.internal_date,
                            max_attachment_bytes=self.max_attachment_bytes,
                            held=held.get(references[uid]),
                        )
                    except Exception as exc:
                        if savepoint is None:
                            raise _BatchFailed from exc
                        await savepoint.rollback()
                        failure = exc
                        break
                    if savepoint is not None:
                        await savepoint.commit()
                    statuses.append(outcome.status)
                    if outcome.status in (ImportStatus.INGESTED, ImportStatus.DUPLICATE):
                        done.append(uid)
                cursor = replace(cursor, last_uid=uid)
            await save_cursor(session, self.account.id, cursor)
        for status in statuses:
            self.status.count(OUTCOMES[status])
        return cursor, done, failure

    async def _after_import(
        self, client: ImapClient, mail: EmailSettings, imported: list[int]
    ) -> None:
        """Mark or move what was committed; quarantined messages stay where people see them."""
        if not imported:
            return
        if mail.after_import is AfterImport.MARK_SEEN:
            await client.add_flags(imported, r"\Seen")
        elif mail.after_import is AfterImport.MOVE:
            if not mail.move_to_folder:
                raise ImapError("after_import is move, but no move_to_folder is set")
            await client.move(imported, mail.move_to_folder)
