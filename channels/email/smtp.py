"""Outbound email: the outbox's sender for the email channel, over SMTP with aiosmtplib.

Each outbox item goes out from one email account (a `channel_account` row of the email
channel), threaded into the customer's conversation (In-Reply-To, References) with a
Message-ID of ours that core.ingest recognizes when the customer answers it. SMTP's own
verdicts decide what happens next: 4xx replies, dropped connections and timeouts are retried
by the outbox; 5xx replies fail the item with the server's words. The SMTP password is
decrypted just before the login; a key that cannot read it is retried like a 4xx (the admin
may fix the keys) and recorded as the account's error, which /healthz shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.compose import compose_message
from channels.email.inbound import CHANNEL, message_id_in
from channels.email.settings import SECRET_FIELDS, EmailSettings, TlsMode
from channels.email.threads import MAX_REFERENCES
from core.channel_accounts import enabled_account_exists, record_account_error
from core.credentials import CredentialCipher, CredentialError
from core.db import SessionFactory, transaction
from core.models import (
    ChannelAccount,
    Conversation,
    Direction,
    Interaction,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from core.outbox import Delivery, PermanentSendError, Sender, TransientSendError


@dataclass(frozen=True)
class _Outgoing:
    """What one attempt needs from the database, read before the network is touched."""

    account: ChannelAccount
    mail: EmailSettings
    message_id: str
    references: list[str]


def stored_settings(row: ChannelAccount) -> EmailSettings:
    """An account's settings as stored, typed; its passwords left out (they are ciphertexts
    here, decrypted only for the login)."""
    return EmailSettings.model_validate({**row.settings, **dict.fromkeys(SECRET_FIELDS, "")})


class EmailSender(Sender):
    """Delivers email outbox items through the SMTP server of the account they go out from.

    `timeout_seconds` bounds each SMTP step and the whole attempt.
    """

    def __init__(
        self, sessions: SessionFactory, *, cipher: CredentialCipher, timeout_seconds: float = 60.0
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self.timeout_seconds = timeout_seconds

    async def is_ready(self) -> bool:
        """Replies wait in the outbox until an admin has configured an enabled email account."""
        async with self._sessions() as session:
            return await enabled_account_exists(session, CHANNEL)

    async def do_send(self, delivery: Delivery) -> str:
        # The session closes before SMTP starts: no database connection waits on the network.
        async with self._sessions() as session:
            outgoing = await _prepare(session, delivery)
        payload = delivery.payload
        mail = outgoing.mail
        try:
            message = compose_message(
                from_address=mail.address,
                from_name=mail.display_name,
                to=delivery.recipient,
                subject=_text(payload, "subject"),
                text=_text(payload, "text"),
                html=_text(payload, "html") or None,
                message_id_domain=_domain(mail.address),
                in_reply_to=_text(payload, "in_reply_to") or None,
                references=outgoing.references,
                automatic=payload.get("automatic") is True,
                outbox_id=delivery.outbox_id,
                message_id=outgoing.message_id,
            )
        except ValueError as exc:
            raise PermanentSendError(f"cannot compose the message: {exc}") from None
        await self._submit(outgoing, message, delivery.recipient)
        return outgoing.message_id

    async def _password(self, account: ChannelAccount, mail: EmailSettings) -> str | None:
        """The SMTP password in clear text, None to send without AUTH."""
        if not mail.smtp_user:
            return None
        stored = account.settings.get("smtp_password", "")
        try:
            return self._cipher.decrypt(
                stored if isinstance(stored, str) else "",
                f"the smtp_password of email account {account.name!r}",
            )
        except CredentialError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            async with transaction(self._sessions) as session:
                await record_account_error(session, account.id, reason, utcnow())
            raise TransientSendError(str(exc)) from None

    async def _submit(self, outgoing: _Outgoing, message: EmailMessage, recipient: str) -> None:
        mail = outgoing.mail
        password = await self._password(outgoing.account, mail)
        server = f"SMTP server {mail.smtp_host}:{mail.smtp_port}"
        try:
            await aiosmtplib.send(
                message,
                sender=mail.address,
                recipients=[recipient],
                hostname=mail.smtp_host,
                port=mail.smtp_port,
                username=mail.smtp_user or None,
                password=password,
                use_tls=mail.smtp_tls is TlsMode.SSL,
                start_tls=mail.smtp_tls is TlsMode.STARTTLS,
                timeout=self.timeout_seconds,
                # The default asks DNS for this host's name, which can block the event loop.
                local_hostname=_domain(mail.address),
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _verdict(server, exc.recipients) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _verdict(server, [exc]) from None
        except aiosmtplib.SMTPNotSupported as exc:
            # The server lacks what the account is configured for (STARTTLS, AUTH).
            raise PermanentSendError(f"{server}: {exc}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Disconnects, timeouts, refused connections, TLS handshakes that failed.
            reason = str(exc) or type(exc).__name__
            raise TransientSendError(f"{server}: {reason}") from None


def _verdict(
    server: str, replies: Sequence[aiosmtplib.SMTPResponseException]
) -> PermanentSendError | TransientSendError:
    """5xx is final; anything else (4xx, a reply the client could not read) is worth a retry."""
    reason = "; ".join(f"{reply.code} {reply.message}".strip() for reply in replies)
    if replies and all(500 <= reply.code <= 599 for reply in replies):
        return PermanentSendError(f"{server} refused the message: {reason}")
    return TransientSendError(f"{server} deferred the message: {reason}")


async def _prepare(session: AsyncSession, delivery: Delivery) -> _Outgoing:
    account = await sending_account(session, delivery.payload, delivery.conversation_id)
    if account is None:
        raise PermanentSendError("no email account configured")
    try:
        mail = stored_settings(account)
    except ValidationError as exc:
        # Written by a version with other rules, say: the admin must correct the account.
        raise TransientSendError(
            f"the settings of email account {account.name!r} are invalid: {exc}"
        ) from None
    created_at = await session.scalar(
        select(OutboxItem.created_at).where(OutboxItem.id == delivery.outbox_id)
    )
    if created_at is None:
        raise PermanentSendError(f"outbox item {delivery.outbox_id} is gone")
    references = (
        await thread_message_ids(session, delivery.conversation_id, delivery.outbox_id)
        if delivery.conversation_id is not None
        else []
    )
    return _Outgoing(
        account=account,
        mail=mail,
        message_id=_message_id(delivery.outbox_id, created_at, _domain(mail.address)),
        references=references,
    )


async def sending_account(
    session: AsyncSession, payload: dict[str, Any], conversation_id: int | None
) -> ChannelAccount | None:
    """The enabled email account to send from: the one the payload names (`account_id`),
    else the one the customer last wrote to in this conversation, else the one serving its
    queue, else the first. A disabled account neither reads nor sends."""
    candidates: list[int | None] = [_int(payload.get("account_id"))]
    queue_id = None
    if conversation_id is not None:
        meta = await session.scalar(
            select(Interaction.meta)
            .where(
                Interaction.conversation_id == conversation_id,
                Interaction.channel == CHANNEL,
                Interaction.direction == Direction.IN,
            )
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(1)
        )
        candidates.append(_int((meta or {}).get("account_id")))
        queue_id = await session.scalar(
            select(Conversation.queue_id).where(Conversation.id == conversation_id)
        )
    enabled = (
        select(ChannelAccount)
        .where(ChannelAccount.channel == CHANNEL, ChannelAccount.enabled.is_(True))
        .order_by(ChannelAccount.id)
        .limit(1)
    )
    for account_id in candidates:
        if account_id is not None:
            found = await session.scalar(enabled.where(ChannelAccount.id == account_id))
            if found is not None:
                return found
    if queue_id is not None:
        found = await session.scalar(enabled.where(ChannelAccount.queue_id == queue_id))
        if found is not None:
            return found
    return await session.scalar(enabled)


async def thread_message_ids(
    session: AsyncSession, conversation_id: int, outbox_id: int
) -> list[str]:
    """The Message-IDs of the conversation's emails, theirs and ours, oldest first.

    Bounded like a References header: the thread's first message and the latest ones.
    """
    theirs = select(Interaction.occurred_at, Interaction.external_id).where(
        Interaction.conversation_id == conversation_id,
        Interaction.channel == CHANNEL,
        Interaction.direction == Direction.IN,
        Interaction.external_id.is_not(None),
    )
    ours = select(OutboxItem.sent_at, OutboxItem.provider_id).where(
        OutboxItem.conversation_id == conversation_id,
        OutboxItem.channel == CHANNEL,
        OutboxItem.status == OutboxStatus.SENT,
        OutboxItem.provider_id.is_not(None),
        OutboxItem.sent_at.is_not(None),
        OutboxItem.id != outbox_id,
    )
    found: dict[str, datetime] = {}
    for query, order in (
        (theirs, (Interaction.occurred_at, Interaction.id)),
        (ours, (OutboxItem.sent_at, OutboxItem.id)),
    ):
        first = await session.execute(query.order_by(*order).limit(1))
        latest = await session.execute(
            query.order_by(*(column.desc() for column in order)).limit(MAX_REFERENCES)
        )
        for when, key in [*first, *latest]:
            # An inbound message's key may add a content digest to its Message-ID, or be
            # only a digest (no Message-ID).
            message_id = message_id_in(key) if key is not None else None
            if when is not None and message_id is not None:
                found.setdefault(message_id, when)
    return sorted(found, key=lambda message_id: found[message_id])


def _message_id(outbox_id: int, created_at: datetime, domain: str) -> str:
    """Our Message-ID for an outbox item: the same on every attempt, so a retry after a lost
    reply to DATA lets the recipient drop the copy, and an answer to either copy threads
    here. channels.email.threads.parse_outbox_id reads the item back from it."""
    seed = f"{outbox_id}:{created_at.isoformat()}".encode()
    return f"<omnicrm.{outbox_id}.{hashlib.sha256(seed).hexdigest()[:16]}@{domain}>"


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
