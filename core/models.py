"""The domain model as SQLAlchemy 2 mapped classes; no I/O lives here."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Re-exported: the models' defaults and their callers read the one clock.
from core.clock import utcnow as utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; omnicrm stores only aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
IdType = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    # API tokens for other systems: ingest interactions and read, nothing else.
    INTEGRATION = "integration"


class Presence(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class InteractionKind(enum.StrEnum):
    MESSAGE = "message"
    CALL = "call"
    FORM = "form"
    NOTE = "note"
    EVENT = "event"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    INTERNAL = "internal"


class LeadStage(enum.StrEnum):
    """The stages of the pipeline every installation starts with ("Sales"); a pipeline's
    stages are rows of `PipelineStage`, these are only the default's keys."""

    NEW = "new"
    QUALIFIED = "qualified"
    PROPOSAL = "proposal"
    WON = "won"
    LOST = "lost"


class StageOutcome(enum.StrEnum):
    """What reaching a stage means: still being worked, or closed as won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Receipt(enum.StrEnum):
    """What the provider reported of a message after taking it (core/delivery.py ranks them)."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class IdentityKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    WEB = "web"
    # An id the customer has in another system that writes to us through the API.
    EXTERNAL = "external"


class Account(Base):
    """A client company; it may trade through several legal entities."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    legal_entities: Mapped[list[LegalEntity]] = relationship(back_populates="account")


class LegalEntity(Base):
    """A company an account trades through: the ERP's customer (its `erp_ref`, the customer
    number there) and the one its tax id names (VAT number, ИНН, ...; stored without spaces or
    punctuation, upper case: `core.accounts.normalize_tax_id`)."""

    __tablename__ = "legal_entity"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    erp_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    tax_id: Mapped[str | None] = mapped_column(String(50), index=True)

    account: Mapped[Account] = relationship(back_populates="legal_entities")


class Operator(Base):
    __tablename__ = "operator"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default=Role.OPERATOR)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    languages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Concurrent work per channel, e.g. {"voice": 1, "messaging": 5, "email": 20}.
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    presence: Mapped[str] = mapped_column(String(20), default=Presence.OFFLINE)
    presence_reason: Mapped[str | None] = mapped_column(String(200))
    presence_since: Mapped[datetime] = mapped_column(default=utcnow)
    # At most this much work across all channel kinds; None: only the per-kind capacities.
    total_capacity: Mapped[int | None] = mapped_column(Integer)
    # Round robin's memory: when routing last gave this operator work.
    last_assigned_at: Mapped[datetime | None]
    # Refreshed while a console websocket is open; routing sets auto-away when it goes stale.
    console_seen_at: Mapped[datetime | None]
    # The operator's own choices (language, time zone, notifications); read through
    # core.preferences.Preferences, which gives every missing key its default.
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Queue(Base):
    __tablename__ = "queue"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Strategy, matching rules, business hours and SLA targets (the routing layer reads them).
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueMember(Base):
    """An operator works this queue and may see its conversations."""

    __tablename__ = "queue_member"

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queue.id", ondelete="CASCADE"), primary_key=True
    )
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operator.id", ondelete="CASCADE"), primary_key=True
    )


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    priority_tier: Mapped[str] = mapped_column(String(20), default="standard")
    # First touch: how this customer found us (utm_*, referrer, channel, form).
    marketing_source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    # A merged contact stays as a tombstone pointing at the survivor, so old links resolve.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    # Set when a privacy request erased the person: the row stays as an anonymised tombstone
    # that their anonymised conversations still point at (core/privacy.py).
    erased_at: Mapped[datetime | None]
    # The person's customer number in the ERP (migration 0015), unique when set: the ERP
    # bridge finds their customer by it before trying their addresses.
    erp_ref: Mapped[str | None] = mapped_column(String(100), index=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="contact", order_by="Identity.id"
    )


class Identity(Base):
    """(kind, normalized address) belongs to exactly one contact."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("kind", "address"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The person unsubscribed this address (an SMS "STOP", Twilio's error 21610): replies to it
    # are refused with `opt_out_reason` until they subscribe again ("START").
    opted_out_at: Mapped[datetime | None]
    opt_out_reason: Mapped[str | None] = mapped_column(String(500))

    contact: Mapped[Contact] = relationship(back_populates="identities")


_UNMEASURED = (
    "(first_response_at IS NOT NULL AND first_response_seconds IS NULL)"
    " OR (resolved_at IS NOT NULL AND resolution_seconds IS NULL)"
)


# routing/capacity.py's HELD_STATUSES, written out: the statuses of work that holds its operator.
_HELD = "assignee_id IS NOT NULL AND status IN ('open', 'pending')"
_UNQUEUED = "queue_entered_at IS NULL"


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_contact_channel", "contact_id", "channel", "status"),
        Index("ix_conversation_queue_status", "queue_id", "status"),
        Index("ix_conversation_assignee_status", "assignee_id", "status"),
        Index("ix_conversation_created", "created_at"),
        # Conversations whose business-time durations routing has still to measure.
        Index(
            "ix_conversation_unmeasured",
            "id",
            sqlite_where=text(_UNMEASURED),
            postgresql_where=text(_UNMEASURED),
        ),
        # The work that holds each operator (routing/capacity.py: HELD_WORK), with its channel.
        Index(
            "ix_conversation_held",
            "assignee_id",
            "channel",
            sqlite_where=text(_HELD),
            postgresql_where=text(_HELD),
        ),
        # Conversations routing has not matched to a queue yet (routing/new_work.py).
        Index(
            "ix_conversation_unqueued",
            "id",
            sqlite_where=text(_UNQUEUED),
            postgresql_where=text(_UNQUEUED),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    channel: Mapped[str] = mapped_column(String(30))
    # Channel-specific thread identity, e.g. a normalized email subject or a chat id.
    thread_key: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=ConversationStatus.OPEN)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_inbound_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # Set when routing has matched the conversation to its queue (rules, or the channel's
    # queue); the start of the current wait, reset by a transfer, requeue or overflow.
    queue_entered_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    # Times to the first response and to resolution counted in the queue's business hours
    # (routing/metrics.py measures them after the fact; null until then, and resolution again
    # after a reopening). Reports read them.
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)
    # How often a resolved conversation was opened again (by the customer or an operator).
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The last "why nobody" routing logged, so a waiting conversation is not logged every pass.
    routing_note: Mapped[str | None] = mapped_column(String(500))

    contact: Mapped[Contact] = relationship()


class Interaction(Base):
    """One item of the unified stream; append-only."""

    __tablename__ = "interaction"
    __table_args__ = (
        # Idempotency lives in the database: a re-delivered provider id cannot be stored twice.
        UniqueConstraint("channel", "external_id"),
        Index("ix_interaction_contact_time", "contact_id", "occurred_at", "id"),
        Index("ix_interaction_conversation_time", "conversation_id", "occurred_at", "id"),
        # Reports count the stream by time, direction, channel and kind from this index alone.
        Index("ix_interaction_time", "occurred_at", "direction", "channel", "kind"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    kind: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pipeline(Base):
    """A funnel leads go through, e.g. "New customers" and "Repeat sales" (core/pipelines.py).
    Its stages are ordered by `position`; the first open one is where new leads start."""

    __tablename__ = "pipeline"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Archived pipelines keep their leads for reports but take no new ones.
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    stages: Mapped[list[PipelineStage]] = relationship(
        order_by="PipelineStage.position", lazy="selectin", cascade="all, delete-orphan"
    )


class PipelineStage(Base):
    """One column of a pipeline's board. `key` is what leads store and the API speaks;
    `probability` (percent) weighs the column's value; `outcome` says whether a lead here is
    still open or closed as won or lost. A stage rule: entering the stage gives the lead a
    follow-up task due `follow_up_days` later (core/pipelines.py)."""

    __tablename__ = "pipeline_stage"
    __table_args__ = (UniqueConstraint("pipeline_id", "key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    probability: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(10), default=StageOutcome.OPEN)
    follow_up_days: Mapped[int | None] = mapped_column(Integer)
    follow_up_note: Mapped[str] = mapped_column(String(500), default="")


class Lead(Base):
    """A sales opportunity in a pipeline: `stage` is one of its pipeline's stage keys.
    `stage_entered_at` is when it reached that stage; `closed_at` when it reached a won or lost
    stage (null while open). Every move is a `LeadStageChange` row."""

    __tablename__ = "lead"
    __table_args__ = (
        Index("ix_lead_pipeline_stage", "pipeline_id", "stage"),
        Index("ix_lead_pipeline_created", "pipeline_id", "created_at"),
        Index("ix_lead_closed", "closed_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(40), default=LeadStage.NEW)
    value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    expected_close_on: Mapped[date | None] = mapped_column(Date)
    # Why it was lost (required when moved to a lost stage).
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    # utm_source, utm_medium, utm_campaign, referrer of the submission that created it.
    marketing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stage_entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LeadStageChange(Base):
    """A lead entering a stage (`from_stage` null: the lead was created there). Reports read
    these for conversion per stage and cycle length."""

    __tablename__ = "lead_stage_change"
    __table_args__ = (
        Index("ix_lead_stage_change_lead", "lead_id", "changed_at"),
        Index("ix_lead_stage_change_pipeline", "pipeline_id", "to_stage", "lead_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(40))
    to_stage: Mapped[str] = mapped_column(String(40))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(500))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskKind(enum.StrEnum):
    # A missed call (abandoned, unanswered, after hours) to return.
    CALLBACK = "callback"
    # A reminder an operator set on a conversation, or a lead's next step.
    FOLLOW_UP = "follow_up"


class TaskOutcome(enum.StrEnum):
    DONE = "done"
    # The customer reached us again (a call answered) before anyone called back.
    ANSWERED = "answered"
    # An operator called back and the customer picked up.
    CALLED_BACK = "called_back"
    CANCELLED = "cancelled"


class Task(Base):
    """A callback or follow-up with a due time and an owner (core/tasks.py).

    Open while `done_at` is null. A callback task belongs to its call's queue until routing
    gives it an owner; at most one callback is open per contact (a second missed call updates
    it: `meta.attempts`). `notified_at` is set when its owner was told it is due."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_owner_open", "owner_id", "done_at", "due_at"),
        Index("ix_task_queue_open", "queue_id", "done_at", "due_at"),
        Index("ix_task_due", "done_at", "notified_at", "due_at"),
        Index("ix_task_lead_open", "lead_id", "done_at", "due_at"),
        Index(
            "uq_task_open_callback",
            "contact_id",
            unique=True,
            sqlite_where=text("kind = 'callback' AND done_at IS NULL"),
            postgresql_where=text("kind = 'callback' AND done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    # A lead's next step (core/pipelines.py): the lead's board card shows the earliest open one.
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL")
    )
    due_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    # done, answered, called_back, cancelled (TaskOutcome); null while open.
    outcome: Mapped[str | None] = mapped_column(String(20))
    notified_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    # Callbacks: number, reason, waited_seconds, voicemail_interaction_id, attempts.
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxItem(Base):
    """An outbound message: committed here first, then delivered by a worker."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    channel: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    # The provider's latest receipt (core.models.Receipt), applied by rank, and its error code
    # when it failed (Twilio's 30003, an SMTP bounce's status).
    receipt: Mapped[str | None] = mapped_column(String(20))
    receipt_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(40))
    # An operator sent a failed item again: the retry schedule starts over from here (attempts
    # keep counting, they fence the workers' results).
    requeued_at: Mapped[datetime | None]
    attempts_before_requeue: Mapped[int] = mapped_column(Integer, default=0)


class ChannelCursor(Base):
    """Where ingest stands for one account of a pull channel (IMAP UIDs, Telegram offset)."""

    __tablename__ = "channel_cursor"
    __table_args__ = (UniqueConstraint("channel", "account"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(30))
    account: Mapped[str] = mapped_column(String(320))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    # Who acted when it was not an operator: "cli", "token:<name>", "system".
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(60))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebForm(Base):
    __tablename__ = "web_form"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="Contact us")
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    create_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    required_fields: Mapped[list[str]] = mapped_column(JSONType, default=list)
    thank_you_url: Mapped[str | None] = mapped_column(String(2000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SHA-256 of the token: tokens are long random strings, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.INTEGRATION)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AuthSession(Base):
    __tablename__ = "auth_session"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operator.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class QuarantineStatus(enum.StrEnum):
    QUARANTINED = "quarantined"
    INGESTED = "ingested"
    DISCARDED = "discarded"


class QuarantinedMessage(Base):
    """Inbound input a channel could not ingest: the raw bytes and the reason, kept for an
    admin to retry (through the channel's own import) or discard.

    `reference` is where the item came from in the channel's terms, unique per account (the
    email poller's is `<uidvalidity>:<uid>`), so the same item held again updates its row.
    `sender_kind`/`sender_address` name who it is from when the channel can tell without
    reading it whole (a Telegram update's user), so a privacy request finds it."""

    __tablename__ = "quarantined_message"
    __table_args__ = (
        UniqueConstraint("account_id", "reference"),
        Index("ix_quarantined_message_sender", "sender_kind", "sender_address"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_account.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(200))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    sender_kind: Mapped[str | None] = mapped_column(String(20))
    sender_address: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=QuarantineStatus.QUARANTINED)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OfferStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    # Withdrawn: the work was transferred, assigned by hand or overflowed meanwhile.
    CANCELLED = "cancelled"


class Offer(Base):
    """Work offered to one operator, who accepts or rejects it before it expires."""

    __tablename__ = "offer"
    __table_args__ = (
        # The database itself refuses a second pending offer of one conversation.
        Index(
            "uq_offer_pending_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_offer_operator_status", "operator_id", "status"),
        Index("ix_offer_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default=OfferStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


# routing/waiting.py's refusals, written out: an operator rejected an offer or let it time out.
_REFUSAL = "kind IN ('rejected', 'timed_out') AND operator_id IS NOT NULL"


class RoutingDecision(Base):
    """One entry of a conversation's routing history, with the reasons (the decision log)."""

    __tablename__ = "routing_decision"
    __table_args__ = (
        Index("ix_routing_decision_conversation", "conversation_id", "id"),
        Index("ix_routing_decision_lead", "lead_id", "id"),
        Index("ix_routing_decision_kind_operator", "kind", "operator_id", "created_at"),
        # Offers refused (routing/waiting.py reads, per waiting conversation, whether any was).
        Index(
            "ix_routing_decision_refusal",
            "conversation_id",
            "created_at",
            sqlite_where=text(_REFUSAL),
            postgresql_where=text(_REFUSAL),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # A conversation's decision, or a lead's (lead_assign).
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE")
    )
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    # queue, offer, assign, wait, none, accepted, rejected, timed_out, overflow, transfer,
    # manual_assign, requeue, sla_breach, auto_away, lead_assign.
    kind: Mapped[str] = mapped_column(String(30))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text, default="")
    # Candidates with their exclusions and standings, or the rule match, as JSON.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Who decided: "routing", "operator:<id>", "supervisor:<id>", "sla".
    actor_label: Mapped[str] = mapped_column(String(200), default="routing")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaKind(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class SlaTimer(Base):
    """A persisted SLA deadline: a restart finds it here and breaches it on time."""

    __tablename__ = "sla_timer"
    __table_args__ = (
        UniqueConstraint("conversation_id", "kind"),
        Index("ix_sla_timer_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    due_at: Mapped[datetime]
    # running, met, breached, cancelled.
    state: Mapped[str] = mapped_column(String(20), default="running")
    settled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingSetting(Base):
    """Routing configuration kept in the database: the queue rules and the lead rules."""

    __tablename__ = "routing_setting"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- console (issue 5) ---


class CannedResponse(Base):
    """A prepared answer with placeholders: shared (no owner; supervisors manage those) or an
    operator's own."""

    __tablename__ = "canned_response"
    __table_args__ = (
        # Shortcuts are unique among the shared ones and among each operator's own; NULL owners
        # never collide in the second index, so the first covers the shared ones.
        Index(
            "uq_canned_response_shared_shortcut",
            "shortcut",
            unique=True,
            sqlite_where=text("owner_id IS NULL"),
            postgresql_where=text("owner_id IS NULL"),
        ),
        UniqueConstraint("owner_id", "shortcut"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    shortcut: Mapped[str | None] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ReadMarker(Base):
    """How far an operator has read a conversation: every interaction up to this id."""

    __tablename__ = "read_marker"

    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operator.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_interaction_id: Mapped[int] = mapped_column(IdType)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """Something for one operator's attention, e.g. a note that mentions them."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("operator_id", "interaction_id"),
        UniqueConstraint("operator_id", "task_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30), default="mention")
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    # A mention's note; null for a task's reminder (kind "task_due").
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interaction.id", ondelete="CASCADE")
    )
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


# --- login throttling (issue 9) ---


class LoginThrottle(Base):
    """Sign-in attempts counted in a fixed window, per account (normalized email) or per client
    address; shared by every server process through the database."""

    __tablename__ = "login_throttle"

    # "account" or "address".
    scope: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    # Attempts in the window not (yet) known to have succeeded.
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(index=True)


class RateLimitCount(Base):
    """Requests counted per fixed window, per purpose (e.g. "forms") and client; shared by every
    server process through the database (core/rate_limits.py)."""

    __tablename__ = "rate_limit_count"

    purpose: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


# --- channel accounts (issue 10) ---


class ChannelAccount(Base):
    """One account of a channel: a mailbox, a Twilio account, a Telegram bot.

    `settings` is what the channel's settings model accepted; the fields the channel names
    secret are stored encrypted (core/credentials.py: "" or "enc:v1:<token>"). Health is
    written by the account's poller or webhooks: `last_success_at`, `last_error`."""

    __tablename__ = "channel_account"
    __table_args__ = (UniqueConstraint("channel", "name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Where new conversations of this account wait, unless queue rules say otherwise.
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Declared in the config file, which owns it (the API and CLI cannot edit it).
    from_config: Mapped[bool] = mapped_column(Boolean, default=False)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AttachmentFetch(Base):
    """An attachment a provider holds for us (Twilio's MediaUrl, Telegram's file_id), fetched
    after the message is stored by the channel's `channels.media.MediaFetcher`: the message is
    never lost to a slow or failing download, and a failed fetch is retried. `position` is the
    attachment's index in `interaction.attachments`; `url` is the provider's reference to the
    file (a URL, or the provider's own id)."""

    __tablename__ = "attachment_fetch"
    __table_args__ = (
        UniqueConstraint("interaction_id", "position"),
        Index("ix_attachment_fetch_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(30))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel_account.id", ondelete="CASCADE")
    )
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interaction.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    # pending, done or failed (given up, the reason in last_error).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- search and views (issue 11) ---


class SavedView(Base):
    """An operator's own named list of conversations: the filters of core.views as JSON."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("operator_id", "name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- voice (issue 13) ---


class CallState(enum.StrEnum):
    """Where a call is (channels/twilio/voice): its caller's leg as omnicrm drives it."""

    # In the number's menu (or its greeting).
    IVR = "ivr"
    # Leaving a voicemail (after hours, or nobody answered).
    VOICEMAIL = "voicemail"
    # Waiting in a queue for an operator (routing offers it).
    QUEUED = "queued"
    # An operator accepted: their device is being rung.
    RINGING = "ringing"
    # Caller and operator talk.
    CONNECTED = "connected"
    # The operator put the caller on hold (the caller hears the hold message).
    ON_HOLD = "on_hold"
    # Outbound (a callback): the operator's device, then the customer, are rung.
    DIALING = "dialing"
    ENDED = "ended"


class VoiceCall(Base):
    """One phone call: the caller's leg (inbound) or a callback (outbound), and its progress.

    Written at the first webhook (`call_sid` unique: Twilio's retries and repeats find it),
    so a server killed mid-call finds the call where it was. `leg` numbers the operator legs
    placed for it: a callback about an older leg is fenced off. The call's interaction and
    conversation (routing's work item) are made when the caller reaches a queue, leaves a
    voicemail or hangs up."""

    __tablename__ = "voice_call"
    __table_args__ = (
        Index("ix_voice_call_state", "state", "updated_at"),
        Index("ix_voice_call_queue", "queue_id", "state", "started_at"),
        Index("ix_voice_call_operator", "operator_id", "ended_at"),
        Index("ix_voice_call_conversation", "conversation_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel_account.id", ondelete="SET NULL")
    )
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    # in: a customer called; out: an operator called a customer back.
    direction: Mapped[str] = mapped_column(String(10))
    from_number: Mapped[str] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(40))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"))
    # Where the call came in: the queue the number's call flow sent the caller to (the menu
    # option's, else the number's; a callback: its task's), written once. The queue the call
    # is in now is its conversation's (routing's rules, overflow and transfers move that one):
    # the caller's position, the monitor and callback tasks read it there.
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(20), default=CallState.IVR)
    # answered, abandoned, voicemail, no_answer, busy, failed, missed (after hours, no voicemail)
    outcome: Mapped[str | None] = mapped_column(String(20))
    # The IVR: where the caller is in the menu tree ("" the top; "1.2" nested), their choice.
    menu_path: Mapped[str | None] = mapped_column(String(100))
    menu_attempts: Mapped[int] = mapped_column(Integer, default=0)
    ivr_choice: Mapped[str | None] = mapped_column(String(100))
    # The operator rung, connected or (outbound) calling; their current leg.
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    leg: Mapped[int] = mapped_column(Integer, default=0)
    agent_call_sid: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # Seconds the caller waited in the queue (until answered or gone); of the whole call.
    wait_seconds: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    # Seconds caller and operator talked (handle time, for the monitor).
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    # When the operator's wrap-up after this call ends (their presence returns).
    wrapup_until: Mapped[datetime | None]
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- ERP bridge (issue 14) ---
#
# The embedded ERP's own data (erp_bridge/embedded.py reads it, erp_bridge/embedded_data.py
# writes it), and the one configured ERP connection (erp_bridge/config.py). Its customers are
# omnicrm's own: a person is a contact (`contact:<id>`, or the contact's `erp_ref`), a company
# is a legal entity (its `erp_ref`). Amounts have two decimals in the row's currency,
# quantities three (an ERP may sell 2.5 m).


class ErpProduct(Base):
    __tablename__ = "erp_product"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    # Both or neither: a product may have no list price.
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ErpWarehouse(Base):
    __tablename__ = "erp_warehouse"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErpStock(Base):
    """How much of a product a warehouse holds, and how much of that is promised."""

    __tablename__ = "erp_stock"
    __table_args__ = (UniqueConstraint("product_id", "warehouse_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("erp_product.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(
        ForeignKey("erp_warehouse.id", ondelete="CASCADE"), index=True
    )
    on_hand: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    reserved: Mapped[Decimal] = mapped_column(Numeric(14, 3), default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ErpOrder(Base):
    """An order of the embedded ERP. `customer_ref` is who ordered as the ERP names them
    (`contact:<id>`, a contact's or a legal entity's `erp_ref`); `contact_id` the person, when
    one is known. Status and payment status are erp_bridge.models' OrderStatus and
    PaymentStatus values; the tracking columns are its (one) shipment."""

    __tablename__ = "erp_order"
    __table_args__ = (
        Index("ix_erp_order_customer", "customer_ref", "ordered_at"),
        Index("ix_erp_order_contact", "contact_id", "ordered_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    number: Mapped[str] = mapped_column(String(100), unique=True)
    customer_ref: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    ordered_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    payment_status: Mapped[str] = mapped_column(String(20), default="unknown")
    total: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    tracking_number: Mapped[str | None] = mapped_column(String(200))
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    carrier: Mapped[str | None] = mapped_column(String(100))
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lines: Mapped[list[ErpOrderLine]] = relationship(
        order_by="ErpOrderLine.id", cascade="all, delete-orphan", passive_deletes=True
    )


class ErpOrderLine(Base):
    __tablename__ = "erp_order_line"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("erp_order.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    total: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))


class ErpInvoice(Base):
    """An invoice of the embedded ERP, for an order or on its own. `status` is an
    InvoiceStatus value as stored; an open invoice past `due_at` with something still due
    reads as overdue."""

    __tablename__ = "erp_invoice"
    __table_args__ = (Index("ix_erp_invoice_customer", "customer_ref", "issued_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    number: Mapped[str] = mapped_column(String(100), unique=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("erp_order.id", ondelete="SET NULL"), index=True
    )
    customer_ref: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[date] = mapped_column(Date)
    due_at: Mapped[date | None] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    amount_due: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ErpConnection(Base):
    """The ERP omnicrm reads (erp_bridge/config.py): at most one row, whose `kind` names an
    erp_bridge module; none means the embedded ERP. `settings` is what the kind's settings
    model accepted, its secret fields encrypted like channel accounts' (core/credentials.py).
    `last_check_*` is the outcome of the last `check` (CLI or API)."""

    __tablename__ = "erp_connection"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_check_at: Mapped[datetime | None]
    last_check_result: Mapped[str | None] = mapped_column(Text)


class SuggestionKind(enum.StrEnum):
    # How the team answered a customer in a resolved conversation.
    REPLY = "reply"
    CANNED = "canned"
    ARTICLE = "article"


class SuggestionDoc(Base):
    """One answer the suggestion engines can propose (core/suggestions): a reply an operator
    sent in a resolved conversation (`question` = what the customer had written since the
    previous reply), a shared canned response or a knowledge article (`question` = its title
    and tags). Rebuilt from its source, never edited by hand except the curation flags.

    Who may be offered it is `core.visibility.suggestion_filter`: replies of conversations the
    operator may see, or replies marked `shareable`; canned responses and articles like their
    lists. `excluded` keeps a reply out of every suggestion. The counters are what operators did
    with it (core/suggestions/feedback.py) and weigh its rank."""

    __tablename__ = "suggestion_doc"
    __table_args__ = (
        Index("ix_suggestion_doc_conversation", "conversation_id"),
        Index("ix_suggestion_doc_source", "kind", "source_id"),
        # The semantic engine's look for vectors made since its last (core/suggestions).
        Index("ix_suggestion_doc_embedding", "embedding_model", "updated_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The reply's interaction id, the canned response's id or the article's id.
    source_id: Mapped[int] = mapped_column(IdType)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE")
    )
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id", ondelete="SET NULL"))
    # Canned responses: the owner (an operator's own) or null (shared).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(16), default="")
    title: Mapped[str] = mapped_column(String(500), default="")
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    # The answer reduced to its words: the same answer given many times ranks once.
    answer_key: Mapped[str] = mapped_column(String(64), index=True, default="")
    shareable: Mapped[bool] = mapped_column(Boolean, default=False)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    inserted_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    edited_count: Mapped[int] = mapped_column(Integer, default=0)
    ignored_count: Mapped[int] = mapped_column(Integer, default=0)
    # The semantic engine's vector (float32, little-endian) and the model that made it.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SuggestionOutcome(enum.StrEnum):
    SHOWN = "shown"
    INSERTED = "inserted"
    # Sent as suggested, or with small edits (most of it kept).
    SENT = "sent"
    # Sent after edits that changed much of it.
    EDITED = "edited"
    # Shown, and a reply went out without it.
    IGNORED = "ignored"


class SuggestionEvent(Base):
    """What happened to a suggestion in a conversation (core/suggestions/feedback.py): shown,
    inserted, sent (kept) or edited (rewritten) in the reply, or ignored. `similarity` is how
    much of the suggested text the sent reply kept (0..1)."""

    __tablename__ = "suggestion_event"
    __table_args__ = (
        Index("ix_suggestion_event_conversation", "conversation_id", "created_at"),
        Index("ix_suggestion_event_time", "created_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    doc_id: Mapped[int | None] = mapped_column(ForeignKey("suggestion_doc.id", ondelete="SET NULL"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(20))
    engine: Mapped[str] = mapped_column(String(20), default="")
    rank: Mapped[int | None] = mapped_column(Integer)
    similarity: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArticleVisibility(enum.StrEnum):
    # Operators only: suggested in the console, never sent as a link.
    INTERNAL = "internal"
    # Also on omnicrm's public help page; may be sent to a customer as a link.
    PUBLIC = "public"


class KnowledgeArticle(Base):
    """A knowledge-base article in one language (core/knowledge.py). Translations of one
    article share its `slug`; the public page (`/help/{slug}`) shows the customer's language.
    Every change adds a `KnowledgeArticleVersion`; `version` is the current one's number."""

    __tablename__ = "knowledge_article"
    __table_args__ = (UniqueConstraint("slug", "language"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    visibility: Mapped[str] = mapped_column(String(20), default=ArticleVisibility.INTERNAL)
    version: Mapped[int] = mapped_column(Integer, default=1)
    archived_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL")
    )
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KnowledgeArticleVersion(Base):
    """One saved state of an article: what it said, who saved it, when."""

    __tablename__ = "knowledge_article_version"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("knowledge_article.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    visibility: Mapped[str] = mapped_column(String(20))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportSubscription(Base):
    """A weekly email of a report to the supervisor who asked for it, sent from the mailbox
    they chose through the outbox (core/reports/schedule.py). `next_run_at` is the next
    `weekday` (0 = Monday) at `hour` in `time_zone`; a run sends the week before it."""

    __tablename__ = "report_subscription"
    __table_args__ = (Index("ix_report_subscription_due", "next_run_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    report: Mapped[str] = mapped_column(String(40))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channel_account_id: Mapped[int] = mapped_column(
        ForeignKey("channel_account.id", ondelete="CASCADE")
    )
    weekday: Mapped[int] = mapped_column(Integer, default=0)
    hour: Mapped[int] = mapped_column(Integer, default=8)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    next_run_at: Mapped[datetime]
    last_sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
