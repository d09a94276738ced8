"""JSON shapes of the console's and the monitor's API (responses)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from web.schemas import ContactOut, ConversationOut, Out


class CannedOut(Out):
    """A canned response; `shared` ones (no owner) are everyone's, others their owner's."""

    id: int
    title: str
    shortcut: str | None
    body: str
    shared: bool
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


class CannedListOut(BaseModel):
    """Every canned response the caller may use (shared and their own), by title."""

    items: list[CannedOut]
    placeholders: list[str] = Field(description="the placeholder names a body may use")


class RenderedOut(BaseModel):
    text: str


class InboxConversationOut(ConversationOut):
    """A conversation as the inbox lists it."""

    queue_entered_at: datetime | None
    contact_display_name: str
    preview: str = Field(description="the latest message or reply, shortened (notes left out)")
    preview_direction: str | None = Field(description="in or out; null without any message")
    last_interaction_at: datetime | None
    unread: int = Field(description="inbound interactions after the caller's read marker")


class InboxSectionOut(BaseModel):
    items: list[InboxConversationOut]
    total: int = Field(description="conversations in the section (items holds at most limit)")
    unread_conversations: int = Field(description="conversations of the section with unread")
    next_cursor: str | None = Field(
        None,
        description="the rest: GET /api/v1/views/conversations?scope=<section>&cursor=...",
    )


class InboxOut(BaseModel):
    mine: InboxSectionOut
    queues: InboxSectionOut
    unassigned: InboxSectionOut


class ReadMarkerOut(Out):
    conversation_id: int
    last_read_interaction_id: int
    read_at: datetime


class NotificationOut(BaseModel):
    """A mention (kind "mention": its note is `interaction_id`) or a task's reminder (kind
    "task_due": `task_id`, no interaction; the excerpt is the task's note or the contact's
    name)."""

    id: int
    kind: str
    conversation_id: int
    interaction_id: int | None
    task_id: int | None = None
    author_id: int | None
    author_name: str | None
    contact_display_name: str
    conversation_subject: str
    excerpt: str
    created_at: datetime
    read_at: datetime | None


class NotificationsOut(BaseModel):
    items: list[NotificationOut]
    unread_count: int


class ReadAllOut(BaseModel):
    updated: int


class MonitorCallsOut(BaseModel):
    """A queue's inbound phone calls (core/monitor.py defines each figure)."""

    waiting: int = Field(description="calls queued or ringing an operator")
    longest_wait_seconds: int | None
    answered_today: int
    answered_within_target_today: int
    answer_target_seconds: int = Field(description="the queue's call_answer_target_seconds")
    service_level_today: float | None = Field(
        description="answered within target / (answered + abandoned) today, 0 to 1; null if none"
    )
    abandoned_today: int
    avg_handle_seconds_today: int | None = Field(
        description="mean talk time of the calls answered that ended today"
    )


class MonitorQueueOut(BaseModel):
    id: int
    name: str
    waiting: int
    longest_wait_seconds: int | None
    offers_pending: int
    service_level_today: float | None = Field(description="0 to 1; null when nothing was due")
    service_level_last_hour: float | None
    abandoned_today: int
    avg_first_response_seconds_today: int | None
    calls: MonitorCallsOut


class MonitorOperatorOut(BaseModel):
    id: int
    name: str
    role: str
    presence: str
    presence_reason: str | None
    presence_since: datetime
    load: dict[str, int] = Field(description="per channel kind: voice, messaging, email")
    capacity: dict[str, int]
    total_capacity: int | None
    conversations: list[int] = Field(description="ids of open and pending assigned ones")
    on_call: bool = Field(description="on a phone call now (connected or on hold)")
    on_call_seconds_today: int = Field(
        description="talk time of today's ended calls plus the one in progress"
    )
    overdue_tasks: int = Field(description="their open tasks past the due time")


class VolumeOut(BaseModel):
    hour: int = Field(description="local hour, 0-23")
    start: datetime = Field(description="start of that hour, with the time zone's offset")
    channel: str
    count: int


class HourlyServiceLevelOut(BaseModel):
    hour: int
    start: datetime
    value: float | None


class MonitorOut(BaseModel):
    tz: str
    generated_at: datetime
    day_start: datetime
    queues: list[MonitorQueueOut]
    operators: list[MonitorOperatorOut]
    volume_today: list[VolumeOut]
    service_level_today: list[HourlyServiceLevelOut]


class MergeSuggestionOut(BaseModel):
    contact: ContactOut
    because: list[str]


class MergeSuggestionsOut(BaseModel):
    items: list[MergeSuggestionOut]
