"""The API channel: another system posts an inbound interaction as JSON.

No HTTP here: the web layer (`web/routes_interactions.py`) authenticates the caller and
validates the body into `InteractionIn`; `ApiChannel.receive` resolves the queue it names,
turns it into the `InboundEvent` (`to_event`, pure) and ingests it, idempotent on the body's
`external_id`, in the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel
from core.channels import ChannelFacts
from core.errors import InvalidInput, NotFound
from core.identity import Address, normalize_email, normalize_phone
from core.ingest import (
    MAX_EXTERNAL_ID,
    MAX_TEXT,
    InboundEvent,
    IngestPolicy,
    IngestResult,
    LeadRequest,
    ingest,
)
from core.models import IdentityKind, InteractionKind
from core.queues import queue_by_name

CHANNEL = "api"
MAX_META_BYTES = 64 * 1024
MAX_META_DEPTH = 20


class ContactIn(BaseModel):
    """Who the interaction is from; at least one of email, phone and external_id."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    name: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(
        default=None, max_length=320, description="the customer's id in the calling system"
    )


class LeadIn(BaseModel):
    """Open a sales lead with the interaction (once: a repeated external_id opens none)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,49}$",
        description='where it comes from: the lead\'s source is "api:<source>" '
        '(e.g. "api:field-sales", for lead rules), or "api" without it',
    )


class InteractionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        description="unique id in the calling system; a repeated id is stored once",
    )
    contact: ContactIn
    text: str = Field(max_length=MAX_TEXT)
    html: str | None = Field(default=None, max_length=MAX_TEXT)
    subject: str = Field(default="", max_length=500)
    kind: Literal["message", "call", "form", "event"] = "message"
    occurred_at: AwareDatetime | None = Field(default=None, description="defaults to now")
    meta: dict[str, Any] = Field(default_factory=dict, description="up to 64 KiB of JSON")
    queue: str | None = Field(
        default=None, min_length=1, max_length=100, description="name of the queue to route to"
    )
    lead: LeadIn | None = Field(default=None, description="open a sales lead with it")


def to_event(
    body: InteractionIn, *, queue_id: int | None, default_region: str | None
) -> InboundEvent:
    """The inbound event for an API body; InvalidInput names the offending field."""
    _check_meta(body.meta)
    occurred_at = None
    if body.occurred_at is not None:
        try:
            occurred_at = body.occurred_at.astimezone(UTC)
        except OverflowError:
            raise InvalidInput("date out of range", field="occurred_at") from None
    return InboundEvent(
        channel=CHANNEL,
        external_id=body.external_id,
        addresses=_addresses(body.contact, default_region),
        kind=InteractionKind(body.kind),
        display_name=(body.contact.name or "").strip(),
        subject=body.subject,
        text=body.text,
        html=body.html,
        meta=body.meta,
        occurred_at=occurred_at,
        queue_id=queue_id,
        lead=_lead(body.lead),
    )


def _lead(lead: LeadIn | None) -> LeadRequest | None:
    """What ingest opens for `lead`; an API lead's source is "api" or "api:<source>", so it
    can never pass for another channel's (a web form's "form:<slug>")."""
    if lead is None:
        return None
    return LeadRequest(source=f"{CHANNEL}:{lead.source}" if lead.source else CHANNEL)


def _addresses(contact: ContactIn, default_region: str | None) -> list[Address]:
    addresses = []
    if contact.email and contact.email.strip():
        try:
            addresses.append(Address(IdentityKind.EMAIL, normalize_email(contact.email)))
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="contact.email") from None
    if contact.phone and contact.phone.strip():
        try:
            phone = normalize_phone(contact.phone, default_region)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="contact.phone") from None
        addresses.append(Address(IdentityKind.PHONE, phone))
    if contact.external_id and contact.external_id.strip():
        addresses.append(Address(IdentityKind.EXTERNAL, contact.external_id.strip()))
    if not addresses:
        raise InvalidInput("give the contact's email, phone or external_id", field="contact")
    return addresses


def _check_meta(meta: dict[str, Any]) -> None:
    if _depth(meta) > MAX_META_DEPTH:
        raise InvalidInput(f"at most {MAX_META_DEPTH} levels of nesting", field="meta")
    if len(json.dumps(meta, ensure_ascii=False).encode()) > MAX_META_BYTES:
        raise InvalidInput(f"at most {MAX_META_BYTES} bytes of JSON", field="meta")


def _depth(value: Any) -> int:
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


class ApiChannel(Channel):
    """Your other systems post interactions through the API; answers cannot go back this way
    (no sender), so a reply to such a conversation goes out on another of the contact's
    channels."""

    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=CHANNEL,
        label="API",
        icon="api",
        identity_kind=None,
        description="interactions posted by your other systems",
    )

    async def receive(
        self, session: AsyncSession, body: InteractionIn, *, policy: IngestPolicy
    ) -> IngestResult:
        """Store an interaction another system posted, in the caller's transaction; a repeated
        `external_id` answers the first one's ids (created=False). InvalidInput names the
        field at fault (an unknown queue is `queue`)."""
        queue_id = None
        if body.queue is not None:
            try:
                queue_id = (await queue_by_name(session, body.queue)).id
            except NotFound as exc:
                raise InvalidInput(exc.message, field="queue") from None
        event = to_event(body, queue_id=queue_id, default_region=policy.default_region)
        return await ingest(session, event, policy)
