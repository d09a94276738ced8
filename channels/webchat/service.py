"""The website chat's reads and writes, in the caller's session and transaction.

What a visitor may read is one rule, here: the messages (not notes, not system events) of
the conversations their own visitor address started (`thread_key`), on this channel; of the
team, only the name of whoever answered. Everything the widget's routes return goes through
`visitor_messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.webchat.parse import CHANNEL, Prechat
from channels.webchat.visitors import Visitor
from core.delivery import record_receipt
from core.identity import Address, resolve_contact
from core.models import (
    Contact,
    Conversation,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    InteractionKind,
    Operator,
    OutboxItem,
    Receipt,
    utcnow,
)

PAGE = 100


def provider_id(interaction_id: int) -> str:
    """What the outbox records as the id of an answer the widget shows."""
    return f"webchat:{interaction_id}"


@dataclass(frozen=True)
class VisitorMessage:
    """A message as the widget shows it."""

    id: int
    client_id: str | None
    direction: str
    text: str
    author: str | None
    at: datetime
    attachments: list[dict[str, Any]]
    read: bool

    def as_json(self, attachment_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "direction": self.direction,
            "text": self.text,
            "author": self.author,
            "at": self.at.isoformat(),
            "read": self.read,
            "attachments": [
                {
                    "name": entry.get("filename") or f"file {index + 1}",
                    "content_type": entry.get("content_type") or "application/octet-stream",
                    "size": entry.get("size"),
                    "url": f"{attachment_url}/{self.id}/{index}" if entry.get("key") else None,
                }
                for index, entry in enumerate(self.attachments)
            ],
        }


async def contact_of(session: AsyncSession, visitor: Visitor) -> int | None:
    return await session.scalar(
        select(Identity.contact_id).where(
            Identity.kind == IdentityKind.WEB, Identity.address == visitor.address
        )
    )


async def conversation_ids(session: AsyncSession, visitor: Visitor) -> list[int]:
    """The visitor's own chats, oldest first."""
    contact_id = await contact_of(session, visitor)
    if contact_id is None:
        return []
    rows = await session.scalars(
        select(Conversation.id)
        .where(
            Conversation.contact_id == contact_id,
            Conversation.channel == CHANNEL,
            Conversation.thread_key == visitor.address,
        )
        .order_by(Conversation.id)
    )
    return list(rows)


async def visitor_messages(
    session: AsyncSession,
    visitor: Visitor,
    *,
    after: int = 0,
    only: Sequence[int] | None = None,
    limit: int = PAGE,
) -> list[VisitorMessage]:
    """What the visitor may read, oldest first: messages after id `after` (or the ids in
    `only`) in their chats."""
    conversations = await conversation_ids(session, visitor)
    if not conversations:
        return []
    query = (
        select(Interaction, Operator.name, OutboxItem.receipt)
        .outerjoin(Operator, Operator.id == Interaction.operator_id)
        .outerjoin(OutboxItem, OutboxItem.interaction_id == Interaction.id)
        .where(
            Interaction.conversation_id.in_(conversations),
            Interaction.channel == CHANNEL,
            Interaction.kind == InteractionKind.MESSAGE,
            Interaction.id > after,
        )
    )
    if only is not None:
        query = query.where(Interaction.id.in_(list(only)))
    rows = await session.execute(query.order_by(Interaction.id).limit(limit))
    found = []
    for interaction, operator_name, receipt in rows:
        meta = (interaction.meta or {}).get("webchat") or {}
        outbound = interaction.direction == Direction.OUT
        found.append(
            VisitorMessage(
                id=interaction.id,
                client_id=meta.get("client_id"),
                direction="out" if outbound else "in",
                text=interaction.text,
                author=(operator_name or None) if outbound else None,
                at=interaction.occurred_at,
                attachments=list(interaction.attachments or []),
                read=receipt == Receipt.READ if outbound else False,
            )
        )
    return found


async def attachment_of(
    session: AsyncSession, visitor: Visitor, interaction_id: int, index: int
) -> dict[str, Any] | None:
    """An attachment of a message the visitor may read; None otherwise."""
    found = await visitor_messages(session, visitor, only=[interaction_id], limit=1)
    if not found or index >= len(found[0].attachments):
        return None
    return found[0].attachments[index]


async def mark_read(session: AsyncSession, visitor: Visitor, up_to: int) -> list[int]:
    """The visitor read the answers up to id `up_to`: their receipts say read; the ids."""
    answers = [
        item.id
        for item in await visitor_messages(session, visitor, limit=1000)
        if item.direction == "out" and item.id <= up_to and not item.read
    ]
    for interaction_id in answers:
        await record_receipt(
            session, channel=CHANNEL, provider_id=provider_id(interaction_id), receipt=Receipt.READ
        )
    return answers


async def apply_prechat(session: AsyncSession, visitor: Visitor, form: Prechat) -> int:
    """Attach the pre-chat details to the visitor's contact; its id.

    A visitor seen for the first time joins the person their email or phone belongs to (their
    history from every other channel; what they can read stays their own chats). A visitor
    already known keeps their contact: an address another contact holds stays that contact's
    (merging people is an operator's call), and is noted on theirs."""
    web = Address(IdentityKind.WEB, visitor.address)
    contact_id = await contact_of(session, visitor)
    if contact_id is None:
        contact, _ = await resolve_contact(session, [web, *form.addresses], form.name)
    else:
        contact, _ = await resolve_contact(session, [web], form.name)
        for address in form.addresses:
            owner = await session.scalar(
                select(Identity.contact_id).where(
                    Identity.kind == address.kind, Identity.address == address.value
                )
            )
            if owner is None:
                session.add(
                    Identity(contact_id=contact.id, kind=address.kind, address=address.value)
                )
    if form.name and not contact.display_name:
        contact.display_name = form.name[:200]
    contact.custom_fields = {
        **contact.custom_fields,
        "webchat_prechat": {
            "name": form.name,
            **{str(address.kind): address.value for address in form.addresses},
            "consent": form.consent,
            "at": utcnow().isoformat(),
        },
    }
    await session.flush()
    return contact.id


async def visitor_profile(session: AsyncSession, visitor: Visitor) -> dict[str, str | None]:
    """What the widget shows of the visitor themselves (their own details, nobody else's)."""
    contact_id = await contact_of(session, visitor)
    if contact_id is None:
        return {"name": None, "email": None, "phone": None}
    contact = await session.get(Contact, contact_id)
    given = (contact.custom_fields if contact is not None else {}).get("webchat_prechat") or {}
    return {
        "name": given.get("name") or None,
        "email": given.get("email"),
        "phone": given.get("phone"),
    }
