"""JSON shapes of the API's records (responses); request bodies live beside their routes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from core.delivery import delivery_state

ItemT = TypeVar("ItemT", bound=BaseModel)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OperatorOut(Out):
    id: int
    email: str
    name: str
    role: str
    active: bool
    skills: dict[str, Any]
    languages: dict[str, Any]
    capacity: dict[str, Any]
    total_capacity: int | None
    presence: str
    presence_reason: str | None
    presence_since: datetime


class IdentityOut(Out):
    id: int
    kind: str
    address: str


class ContactOut(Out):
    id: int
    display_name: str
    language: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    owner_id: int | None
    priority_tier: str
    marketing_source: dict[str, Any]
    account_id: int | None
    erp_ref: str | None = None
    merged_into_id: int | None
    # Set once a privacy request erased the person (the record is an anonymised tombstone).
    erased_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    identities: list[IdentityOut]


class ConversationOut(Out):
    id: int
    contact_id: int
    channel: str
    status: str
    queue_id: int | None
    assignee_id: int | None
    priority: int
    subject: str
    created_at: datetime
    updated_at: datetime
    last_inbound_at: datetime | None
    first_response_at: datetime | None
    sla_due_at: datetime | None
    snoozed_until: datetime | None
    resolved_at: datetime | None
    queue_entered_at: datetime | None
    resolution_due_at: datetime | None


class InteractionOut(Out):
    id: int
    conversation_id: int | None
    contact_id: int
    kind: str
    direction: str
    channel: str
    external_id: str | None
    subject: str
    text: str
    html: str | None
    attachments: list[dict[str, Any]]
    meta: dict[str, Any]
    operator_id: int | None
    occurred_at: datetime


class LeadOut(Out):
    id: int
    contact_id: int
    conversation_id: int | None
    interaction_id: int | None
    pipeline_id: int
    title: str
    source: str
    stage: str = Field(description="a stage key of its pipeline")
    value: Decimal | None
    currency: str | None
    owner_id: int | None
    expected_close_on: date | None
    lost_reason: str | None = Field(description="why it was lost, while in a lost stage")
    marketing: dict[str, Any]
    stage_entered_at: datetime
    closed_at: datetime | None = Field(description="when it reached a won or lost stage")
    created_at: datetime
    updated_at: datetime


class OutboxOut(Out):
    id: int
    conversation_id: int | None
    interaction_id: int | None
    channel: str
    recipient: str
    status: str = Field(description="our side: queued, sending, sent or failed")
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    sent_at: datetime | None
    receipt: str | None = Field(
        default=None, description="the provider's latest receipt: sent, delivered, read, failed"
    )
    receipt_at: datetime | None = None
    error_code: str | None = Field(default=None, description="the provider's error code")

    @computed_field(  # type: ignore[prop-decorator]
        description="what a person sees: queued, sending, sent, delivered, read or failed"
    )
    @property
    def delivery(self) -> str:
        return delivery_state(self.status, self.receipt)


class QueueOut(Out):
    id: int
    name: str
    description: str
    config: dict[str, Any]


class FormOut(Out):
    id: int
    slug: str
    title: str
    queue_id: int | None
    create_lead: bool
    required_fields: list[str]
    thank_you_url: str | None
    active: bool


class TokenOut(Out):
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class AuditOut(Out):
    id: int
    actor_id: int | None
    actor_label: str
    action: str
    entity_type: str
    entity_id: str | None
    details: dict[str, Any]
    created_at: datetime


class Page(BaseModel, Generic[ItemT]):
    """A page of a cursor-paginated list; pass `next_cursor` as `cursor` for the next one."""

    items: list[ItemT]
    next_cursor: str | None


def page_of(schema: type[ItemT], rows: Iterable[object], next_cursor: str | None) -> Page[ItemT]:
    """A page of `rows` (ORM objects) serialized with `schema`."""
    return Page[schema](  # type: ignore[valid-type]
        items=[schema.model_validate(row) for row in rows], next_cursor=next_cursor
    )


class QueueWithMembersOut(QueueOut):
    """A queue and the ids of the operators who work it."""

    operator_ids: list[int]


class NewTokenOut(TokenOut):
    """A token just created: `token` is the bearer secret, shown this once only."""

    token: str


class ReplyOut(BaseModel):
    """A reply: the outbound interaction and the outbox item that will deliver it."""

    interaction: InteractionOut
    outbox: OutboxOut


class ReceivedOut(BaseModel):
    """An inbound interaction was accepted (web form or API channel).

    The ids are null only for a web-form submission discarded as spam.
    """

    status: str = "received"
    interaction_id: int | None
    conversation_id: int | None
    contact_id: int | None


class FormAdminOut(FormOut):
    """A form with its public address and the embed snippet's address."""

    url: str
    embed_url: str
    embed_snippet: str = Field(description="the HTML (an iframe) to paste into a website")


class QuarantineOut(BaseModel):
    """Inbound input a channel could not ingest; GET …/raw downloads its bytes."""

    id: int
    channel: str
    account_id: int
    # Where it came from in the channel's terms (email: "<uidvalidity>:<uid>").
    reference: str
    status: str
    reason: str
    interaction_id: int | None
    size: int
    # As the message's own head states them (undecoded if broken), to tell messages apart.
    sender: str
    subject: str
    created_at: datetime
    updated_at: datetime


class OfferOut(Out):
    id: int
    conversation_id: int
    operator_id: int
    queue_id: int | None
    # pending, accepted, rejected, timed_out or cancelled.
    status: str
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None


class RoutingDecisionOut(Out):
    id: int
    conversation_id: int | None
    lead_id: int | None
    # queue, offer, assign, wait, none, accepted, rejected, timed_out, withdrawn, overflow,
    # transfer, manual_assign, requeue, sla_breach, lead_assign.
    kind: str
    queue_id: int | None
    operator_id: int | None
    reason: str
    details: dict[str, Any]
    actor_label: str
    created_at: datetime
    actor_kind: str = Field(
        default="other",
        description="who made it: operator, token, cli, routing, sla, config or other",
    )
    actor_operator_id: int | None = None
    actor_name: str | None = Field(
        default=None, description="the operator's or token's name, for showing people"
    )
