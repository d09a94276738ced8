"""Conversations API routes: list, read, status, notes, assignment, replies and their delivery."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core import conversations
from core.models import ConversationStatus
from web.api import ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import ConversationOut, InteractionOut, OutboxOut, Page, ReplyOut, page_of

routes = ApiRoutes(tag="conversations")

MAX_MESSAGE_CHARS = 100_000
MAX_HTML_CHARS = 1_000_000


class ConversationQuery(PageQuery):
    status: ConversationStatus | None = None
    queue_id: RecordId | None = None
    assignee_id: RecordId | Literal["me"] | None = Field(
        default=None, description='an operator id, or "me"'
    )
    unassigned: bool = Field(default=False, description="only conversations nobody is assigned")
    contact_id: RecordId | None = Field(default=None, description="only this contact's")


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ConversationStatus
    snoozed_until: AwareDatetime | None = Field(
        default=None, description="required for snoozed; must be in the future"
    )


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee_id: RecordId | None = Field(description="an operator id, or null to unassign")


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_HTML_CHARS)
    channel: str | None = Field(
        default=None,
        max_length=30,
        description="answer on another channel of the contact (default: the conversation's)",
    )


@routes.get(
    "/api/v1/conversations",
    summary="Conversations you may see, newest activity first",
    query=ConversationQuery,
    response=Page[ConversationOut],
)
async def list_conversations(call: Call[NoBody, ConversationQuery]) -> Page[ConversationOut]:
    query = call.query
    async with call.sessions() as session:
        rows, next_cursor = await conversations.list_conversations(
            session,
            call.actor,
            status=query.status,
            queue_id=query.queue_id,
            assignee_id=query.assignee_id,
            unassigned=query.unassigned,
            contact_id=query.contact_id,
            cursor=query.cursor,
            limit=query.limit,
        )
    return page_of(ConversationOut, rows, next_cursor)


@routes.get("/api/v1/conversations/{id}", summary="One conversation", response=ConversationOut)
async def get_conversation(call: Call[NoBody, NoBody]) -> ConversationOut:
    async with call.sessions() as session:
        conversation = await conversations.get_conversation(
            session, call.actor, call.path_int("id")
        )
    return ConversationOut.model_validate(conversation)


@routes.get(
    "/api/v1/conversations/{id}/interactions",
    summary="The conversation's interactions, oldest first",
    query=PageQuery,
    response=Page[InteractionOut],
)
async def list_interactions(call: Call[NoBody, PageQuery]) -> Page[InteractionOut]:
    async with call.sessions() as session:
        rows, next_cursor = await conversations.list_interactions(
            session,
            call.actor,
            call.path_int("id"),
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
    return page_of(InteractionOut, rows, next_cursor)


@routes.get(
    "/api/v1/conversations/{id}/outbox",
    summary="Delivery status of the conversation's outbound messages, newest first",
    query=PageQuery,
    response=Page[OutboxOut],
)
async def list_outbox(call: Call[NoBody, PageQuery]) -> Page[OutboxOut]:
    async with call.sessions() as session:
        rows, next_cursor = await conversations.list_outbox(
            session,
            call.actor,
            call.path_int("id"),
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
    return page_of(OutboxOut, rows, next_cursor)


@routes.post(
    "/api/v1/conversations/{id}/status",
    summary="Set the status: open, pending, snoozed (until a time) or resolved",
    body=StatusBody,
    response=ConversationOut,
)
async def set_status(call: Call[StatusBody, NoBody]) -> ConversationOut:
    async with call.sessions() as session, session.begin():
        conversation = await conversations.set_status(
            session,
            call.actor,
            call.path_int("id"),
            call.body.status,
            snoozed_until=call.body.snoozed_until,
        )
    return ConversationOut.model_validate(conversation)


@routes.post(
    "/api/v1/conversations/{id}/notes",
    summary="Add an internal note (never sent to the customer)",
    body=NoteBody,
    response=InteractionOut,
    status=201,
)
async def add_note(call: Call[NoteBody, NoBody]) -> InteractionOut:
    async with call.sessions() as session, session.begin():
        note = await conversations.add_note(
            session, call.actor, call.path_int("id"), text=call.body.text
        )
    return InteractionOut.model_validate(note)


@routes.post(
    "/api/v1/conversations/{id}/assign",
    summary="Assign or unassign; operators may take an unassigned conversation of their queues",
    body=AssignBody,
    response=ConversationOut,
    errors=(409,),
)
async def assign(call: Call[AssignBody, NoBody]) -> ConversationOut:
    async with call.sessions() as session, session.begin():
        conversation = await conversations.assign(
            session, call.actor, call.path_int("id"), call.body.assignee_id
        )
    return ConversationOut.model_validate(conversation)


@routes.post(
    "/api/v1/conversations/{id}/reply",
    summary="Reply to the customer; committed to the outbox, then sent by the channel",
    body=ReplyBody,
    response=ReplyOut,
    status=201,
)
async def reply(call: Call[ReplyBody, NoBody]) -> ReplyOut:
    async with call.sessions() as session, session.begin():
        interaction, item = await conversations.reply(
            session,
            call.actor,
            call.path_int("id"),
            text=call.body.text,
            html=call.body.html,
            channel=call.body.channel,
        )
    return ReplyOut(
        interaction=InteractionOut.model_validate(interaction),
        outbox=OutboxOut.model_validate(item),
    )
