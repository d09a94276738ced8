"""Media of inbound messages, fetched after the message is stored; every channel's.

Some providers hand us a reference to a customer's file rather than the file (Twilio's
MediaUrl, Telegram's file_id). The channel's webhook stores the message with those
attachments marked pending (`pending_attachment`) and queues one `attachment_fetch` row per
item (`queue_fetch`), in the same transaction, then answers the provider: the message is
never lost to a slow or failing download.

A channel's `MediaFetcher` (a subclass, started from its `Channel.background()`; one per
channel per server process, PostgreSQL's SKIP LOCKED sharing the rows between processes)
claims the due rows of its own channels only, downloads each item into the attachment store
and fills in the attachment's entry. The policy is here, once, in the final methods (as
`core.outbox.Sender`'s): an erased contact's media is never fetched; a download is bounded by
`timeout_seconds` and by `max_attachment_bytes` (`TooLarge`); a failure is retried on a
schedule (the outbox's `RetrySchedule`), so an outage of the provider's file servers loses
nothing; a permanent failure (404, a file over the limit, the account gone) is written on the
attachment, which then shows why it has no file. The attempt number taken at claim time
fences every result, as in the outbox. A subclass brings only `do_download`: how one item is
fetched (which credentials, which host), usually through `download`, the streaming HTTP GET
that enforces the size limit.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import final

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelServices
from core.db import transaction
from core.event_types import CALL_UPDATED, INTERACTION_CREATED
from core.events import Event
from core.logfields import log_fields
from core.models import AttachmentFetch, Contact, Interaction, utcnow
from core.outbox import RetrySchedule
from core.sql import insert_ignoring_conflicts, supports_skip_locked
from core.workers import wait_for_any

log = logging.getLogger(__name__)
# A new message with media, or a call whose recording arrived (labelled with its channel).
_WAKING = frozenset({INTERACTION_CREATED, CALL_UPDATED})

PENDING, DONE, FAILED = "pending", "done", "failed"
SCHEDULE = RetrySchedule(
    base_seconds=10.0, cap_seconds=1800.0, max_attempts=12, give_up_after_seconds=86400.0
)
CHUNK = 64 * 1024


class FetchFailed(Exception):
    """The item could not be fetched: retried on the schedule, or given up at once if
    `permanent` (the reason is then written on the attachment)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class TooLarge(FetchFailed):
    """The file is over `max_attachment_bytes`: permanent, and the attachment says so."""

    PREFIX = "larger than the attachment limit"

    def __init__(self, size: int) -> None:
        super().__init__(f"{self.PREFIX} ({size} bytes or more)", permanent=True)


@dataclass(frozen=True)
class Claimed:
    """One claimed attempt at an `attachment_fetch` row; what `do_download` gets.

    `url` is the provider's reference to the file as the channel queued it: a URL (Twilio),
    or the provider's own id (Telegram's file_id)."""

    id: int
    attempt: int
    channel: str
    interaction_id: int
    position: int
    url: str
    account_id: int | None
    created_at: datetime


def pending_attachment(
    filename: str, content_type: str, size: int | None = None
) -> dict[str, object]:
    """The entry of `interaction.attachments` for a file still to be fetched; the fetcher
    fills in `key` and `size` (or `error`, and `too_large`) and clears `pending`."""
    return {
        "key": None,
        "filename": filename,
        "content_type": content_type,
        "size": size,
        "pending": True,
    }


async def queue_fetch(
    session: AsyncSession,
    *,
    channel: str,
    account_id: int | None,
    interaction_id: int,
    position: int,
    url: str,
) -> None:
    """Queue the download of attachment `position` of the interaction (in the caller's
    transaction, with the message); a second call for the same attachment does nothing."""
    await session.execute(
        insert_ignoring_conflicts(session, AttachmentFetch, ["interaction_id", "position"]).values(
            channel=channel,
            account_id=account_id,
            interaction_id=interaction_id,
            position=position,
            url=url,
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
    )


async def http_download(
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    limit: int,
    timeout_seconds: float,
) -> bytes:
    """GET `url` (redirects followed), streamed and stopped once over `limit` bytes.

    Raises `TooLarge`, or `FetchFailed`: transient for 408, 429, 5xx, connection errors and
    timeouts, permanent for other 4xx. aiohttp drops an Authorization header on a redirect to
    another origin; checking that `url` itself is the right host is the caller's business.
    """
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers=dict(headers or {}), allow_redirects=True) as answer,
        ):
            if answer.status == 429 or answer.status >= 500:
                raise FetchFailed(f"HTTP {answer.status}", permanent=False)
            if answer.status >= 400:
                raise FetchFailed(f"HTTP {answer.status}", permanent=answer.status != 408)
            if (answer.content_length or 0) > limit:
                raise TooLarge(answer.content_length or 0)
            data = bytearray()
            async for chunk in answer.content.iter_chunked(CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise TooLarge(len(data))
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None


class MediaFetcher(ABC):
    """Downloads the pending media of `channels` until stopped; wakes when a message of one
    of them arrives. Subclasses implement `do_download`."""

    def __init__(
        self,
        services: ChannelServices,
        channels: frozenset[str],
        *,
        poll_seconds: float = 10.0,
        lease_seconds: float = 120.0,
        batch_size: int = 10,
        schedule: RetrySchedule = SCHEDULE,
        timeout_seconds: float = 60.0,
    ) -> None:
        if not channels:
            raise ValueError("a media fetcher serves at least one channel")
        self.services = services
        self.channels = frozenset(channels)
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.schedule = schedule
        self.timeout_seconds = timeout_seconds
        self._wake = asyncio.Event()

    @abstractmethod
    async def do_download(self, item: Claimed) -> bytes:
        """The item's file, or raise `FetchFailed` (permanent or not; `TooLarge`). Any other
        exception counts as a transient failure. Open no session across the download."""

    @final
    async def download(self, url: str, headers: Mapping[str, str] | None = None) -> bytes:
        """`http_download` with this fetcher's size limit and timeout."""
        return await http_download(
            url,
            headers,
            limit=self.services.settings.max_attachment_bytes,
            timeout_seconds=self.timeout_seconds,
        )

    def _on_event(self, event: Event) -> None:
        if event.type in _WAKING and event.labels.get("channel") in self.channels:
            self._wake.set()

    @final
    async def run(self, stop: asyncio.Event) -> None:
        """Download due media until `stop` is set (between rounds; see core.workers)."""
        self.services.bus.add_listener(self._on_event)
        while not stop.is_set():
            # Cleared before the round, so a message that arrives during it wakes the next.
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("media fetch pass failed")
                handled = 0
            if handled < self.batch_size:
                await wait_for_any(self._wake, stop, seconds=self.poll_seconds)

    @final
    async def run_once(self) -> int:
        """Claim due fetches of this fetcher's channels and do them; how many were attempted."""
        async with transaction(self.services.sessions) as session:
            claimed = await self._claim(session)
        await asyncio.gather(*(self._fetch_one(item) for item in claimed))
        return len(claimed)

    async def _claim(self, session: AsyncSession) -> list[Claimed]:
        now = utcnow()
        query = (
            select(AttachmentFetch)
            .where(
                AttachmentFetch.status == PENDING,
                AttachmentFetch.next_attempt_at <= now,
                AttachmentFetch.channel.in_(sorted(self.channels)),
            )
            .order_by(AttachmentFetch.next_attempt_at, AttachmentFetch.id)
            .limit(self.batch_size)
        )
        if supports_skip_locked(session):
            query = query.with_for_update(skip_locked=True)
        rows = list(await session.scalars(query))
        claimed = []
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + self.lease
            claimed.append(
                Claimed(
                    id=row.id,
                    attempt=row.attempts,
                    channel=row.channel,
                    interaction_id=row.interaction_id,
                    position=row.position,
                    url=row.url,
                    account_id=row.account_id,
                    created_at=row.created_at,
                )
            )
        await session.flush()
        return claimed

    async def _fetch_one(self, item: Claimed) -> None:
        limit = self.services.settings.max_attachment_bytes
        try:
            async with self.services.sessions() as session:
                erased = await _contact_erased(session, item.interaction_id)
            if erased:
                raise FetchFailed("the contact was erased", permanent=True)
            try:
                data = await asyncio.wait_for(self.do_download(item), self.timeout_seconds)
            except TimeoutError:
                raise FetchFailed(
                    f"timed out after {self.timeout_seconds:g}s", permanent=False
                ) from None
            if len(data) > limit:
                raise TooLarge(len(data))
        except FetchFailed as exc:
            await self._failed(
                item, str(exc), permanent=exc.permanent, too_large=isinstance(exc, TooLarge)
            )
            return
        except Exception as exc:
            await self._failed(item, f"{type(exc).__name__}: {exc}", permanent=False)
            return
        key = await self.services.store.put(data)
        async with transaction(self.services.sessions) as session:
            if await self._settle(session, item, DONE, None):
                await _update_attachment(
                    session, item, {"key": key, "size": len(data), "pending": False}
                )

    async def _failed(
        self, item: Claimed, reason: str, *, permanent: bool, too_large: bool = False
    ) -> None:
        async with transaction(self.services.sessions) as session:
            next_at = None
            if not permanent:
                next_at = self.schedule.next_attempt(item.attempt, item.created_at, utcnow())
            if next_at is not None:
                await session.execute(
                    update(AttachmentFetch)
                    .where(
                        AttachmentFetch.id == item.id,
                        AttachmentFetch.status == PENDING,
                        AttachmentFetch.attempts == item.attempt,
                    )
                    .values(last_error=reason[:2000], next_attempt_at=next_at)
                    .execution_options(synchronize_session=False)
                )
                log.info(
                    "media fetch failed; will retry",
                    extra=log_fields(
                        fetch_id=item.id, channel=item.channel, attempt=item.attempt, error=reason
                    ),
                )
                return
            if await self._settle(session, item, FAILED, reason):
                entry: dict[str, object] = {"pending": False, "error": reason[:500]}
                if too_large:
                    entry["too_large"] = True
                await _update_attachment(session, item, entry)
        log.warning(
            "media fetch given up",
            extra=log_fields(
                fetch_id=item.id, channel=item.channel, attempt=item.attempt, error=reason
            ),
        )

    async def _settle(
        self, session: AsyncSession, item: Claimed, status: str, reason: str | None
    ) -> bool:
        result = await session.execute(
            update(AttachmentFetch)
            .where(
                AttachmentFetch.id == item.id,
                AttachmentFetch.status == PENDING,
                AttachmentFetch.attempts == item.attempt,
            )
            .values(status=status, last_error=reason, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


async def _contact_erased(session: AsyncSession, interaction_id: int) -> bool:
    erased_at = await session.scalar(
        select(Contact.erased_at)
        .join(Interaction, Interaction.contact_id == Contact.id)
        .where(Interaction.id == interaction_id)
    )
    return erased_at is not None


async def _update_attachment(
    session: AsyncSession, item: Claimed, changes: dict[str, object]
) -> None:
    """Merge `changes` into the interaction's attachment entry (the row locked: two media
    of one message finishing together must not overwrite each other's entry)."""
    interaction = await session.get(
        Interaction,
        item.interaction_id,
        with_for_update=supports_skip_locked(session),
        populate_existing=True,
    )
    if interaction is None or item.position >= len(interaction.attachments):
        return
    entries = [dict(entry) for entry in interaction.attachments]
    entries[item.position] = {**entries[item.position], **changes}
    interaction.attachments = entries
    await session.flush()
