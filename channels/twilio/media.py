"""Media of inbound messages, fetched after the message is stored.

The message webhook stores the message with its media listed as pending and one
`attachment_fetch` row per item, in the same transaction, then answers Twilio. This worker
(one per server process; PostgreSQL's SKIP LOCKED shares the rows between processes) downloads
each item with the account's credentials into the attachment store and fills in the
attachment's entry. A download that fails is retried on a schedule (the outbox's), so an
outage of Twilio's media servers loses nothing; a permanent failure (404, a file over
`max_attachment_bytes`) is written on the attachment, which then shows why it has no file.

Credentials go only to the account's own API origin (Twilio's media URLs are on
api.twilio.com; aiohttp drops them on a redirect to another origin, such as Twilio's CDN);
a URL elsewhere is not fetched at all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelServices
from channels.twilio.accounts import account_by_id
from channels.twilio.client import basic_auth
from channels.twilio.parse import SMS, WHATSAPP
from core.db import transaction
from core.events import Event
from core.logfields import log_fields
from core.models import AttachmentFetch, Contact, Interaction, utcnow
from core.outbox import RetrySchedule
from core.sql import supports_skip_locked
from core.workers import wait_for_any

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"
SCHEDULE = RetrySchedule(
    base_seconds=10.0, cap_seconds=1800.0, max_attempts=12, give_up_after_seconds=86400.0
)
CHUNK = 64 * 1024


class FetchFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Claimed:
    id: int
    attempt: int
    interaction_id: int
    position: int
    url: str
    account_id: int | None
    created_at: datetime


class MediaFetcher:
    """Downloads pending media until cancelled; wakes when an SMS or WhatsApp arrives."""

    def __init__(
        self,
        services: ChannelServices,
        *,
        poll_seconds: float = 10.0,
        lease_seconds: float = 120.0,
        batch_size: int = 10,
        schedule: RetrySchedule = SCHEDULE,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.services = services
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.schedule = schedule
        self.timeout_seconds = timeout_seconds
        self._wake = asyncio.Event()

    def _on_event(self, event: Event) -> None:
        if event.type == "interaction.created" and event.labels.get("channel") in (SMS, WHATSAPP):
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Download due media until `stop` is set (between rounds; see core.workers)."""
        self.services.bus.add_listener(self._on_event)
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("media fetch pass failed")
                handled = 0
            if handled < self.batch_size:
                self._wake.clear()
                await wait_for_any(self._wake, stop, seconds=self.poll_seconds)

    async def run_once(self) -> int:
        """Claim due fetches and do them; how many were attempted."""
        async with transaction(self.services.sessions) as session:
            claimed = await self._claim(session)
        await asyncio.gather(*(self._fetch_one(item) for item in claimed))
        return len(claimed)

    async def _claim(self, session: AsyncSession) -> list[Claimed]:
        now = utcnow()
        query = (
            select(AttachmentFetch)
            .where(AttachmentFetch.status == PENDING, AttachmentFetch.next_attempt_at <= now)
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
                    row.id,
                    row.attempts,
                    row.interaction_id,
                    row.position,
                    row.url,
                    row.account_id,
                    row.created_at,
                )
            )
        await session.flush()
        return claimed

    async def _fetch_one(self, item: Claimed) -> None:
        try:
            async with self.services.sessions() as session:
                account = (
                    await account_by_id(session, self.services.cipher, item.account_id)
                    if item.account_id is not None
                    else None
                )
                erased = await _contact_erased(session, item.interaction_id)
            if erased:
                raise FetchFailed("the contact was erased", permanent=True)
            if account is None:
                raise FetchFailed("the Twilio account is gone", permanent=True)
            _view, settings = account
            data = await self._download(
                item.url, settings.account_sid, settings.auth_token, settings.api_base_url
            )
        except FetchFailed as exc:
            await self._failed(item, str(exc), permanent=exc.permanent)
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

    async def _download(self, url: str, sid: str, token: str, api_base_url: str) -> bytes:
        if _origin(url) != _origin(api_base_url):
            raise FetchFailed(
                f"media is not on the account's API origin {_origin(api_base_url)}",
                permanent=True,
            )
        limit = self.services.settings.max_attachment_bytes
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(
                    url, headers={"Authorization": basic_auth(sid, token)}, allow_redirects=True
                ) as answer,
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

    async def _failed(self, item: Claimed, reason: str, *, permanent: bool) -> None:
        too_large = reason.startswith(TooLarge.PREFIX)
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
                    extra=log_fields(fetch_id=item.id, attempt=item.attempt, error=reason),
                )
                return
            if await self._settle(session, item, FAILED, reason):
                entry: dict[str, object] = {"pending": False, "error": reason[:500]}
                if too_large:
                    entry["too_large"] = True
                await _update_attachment(session, item, entry)
        log.warning(
            "media fetch given up",
            extra=log_fields(fetch_id=item.id, attempt=item.attempt, error=reason),
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


class TooLarge(FetchFailed):
    PREFIX = "larger than the attachment limit"

    def __init__(self, size: int) -> None:
        super().__init__(f"{self.PREFIX} ({size} bytes or more)", permanent=True)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


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
