"""Conversations API routes: list, read, status, notes, assignment, replies and their delivery
(reply options, delivery status, retrying a failed message)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

from core import channels, conversations, delivery, reply_rules
from core.channels import Capability
from core.customer_context import default_reply_channel
from core.errors import InvalidInput
from core.models import ConversationStatus
from core.suggestions import feedback as suggestion_feedback
from web.api import ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.keys import REGISTRY, SERVICES
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
        description="answer on this channel of the contact (default: the one answering where "
        "the customer wrote last if it reaches them, else the conversation's: reply-options' "
        "default_channel)",
    )
    template: str | None = Field(
        default=None,
        max_length=100,
        description="send this approved template instead of text (see reply-options)",
    )
    variables: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description='the template\'s values by number: {"1": "Kim"}',
    )
    media_urls: list[HttpUrl] = Field(
        default_factory=list,
        max_length=10,
        description="public addresses of media the provider fetches and sends (SMS, WhatsApp)",
    )
    suggestion_id: RecordId | None = Field(
        default=None,
        description="the suggestion the reply started from (GET .../suggestions): recorded "
        "as sent or edited, the other suggestions shown as ignored",
    )


class WindowOut(BaseModel):
    last_inbound_at: datetime | None
    closes_at: datetime | None = Field(description="when free text stops being allowed")
    open: bool


class TemplateOut(BaseModel):
    name: str
    text: str = Field(description="how it reads, {{1}}... where the variables go")
    variables: list[str] = Field(description="a label for each placeholder, {{1}} first")


class ReplyOptionOut(BaseModel):
    channel: str
    label: str
    recipient: str
    window: WindowOut | None = Field(description="the reply window, for channels with one")
    opted_out: str | None = Field(description="why nothing can be sent to this address")
    templates: list[TemplateOut]


class ReplyOptionsOut(BaseModel):
    default_channel: str = Field(
        description="where a reply goes without a channel: the one answering where the "
        "customer wrote last if it reaches them, else the conversation's"
    )
    options: list[ReplyOptionOut]


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
    conversation_id = call.path_int("id")
    channel = call.body.channel
    if channel is None:
        async with call.sessions() as session:
            conversation = await conversations.get_conversation(
                session, call.actor, conversation_id
            )
            channel = await default_reply_channel(session, call.actor, conversation)
    template = None
    if call.body.template is not None:
        template = await _template(call, conversation_id, channel)
    async with call.sessions() as session, session.begin():
        interaction, item = await conversations.reply(
            session,
            call.actor,
            conversation_id,
            text=call.body.text,
            html=call.body.html,
            channel=channel,
            template=template,
            media_urls=[str(url) for url in call.body.media_urls],
        )
        await suggestion_feedback.record_reply(
            session,
            call.actor,
            conversation_id,
            text=interaction.text,
            suggestion_id=call.body.suggestion_id,
        )
    return ReplyOut(
        interaction=InteractionOut.model_validate(interaction),
        outbox=OutboxOut.model_validate(item),
    )


async def _template(
    call: Call[ReplyBody, NoBody], conversation_id: int, name: str
) -> dict[str, Any]:
    """The named template of the reply's channel `name`, filled with the reply's variables."""
    async with call.sessions() as session:
        await conversations.get_conversation(session, call.actor, conversation_id)
    channel = call.request.app[REGISTRY].require(name)
    offered = await channel.templates(call.request.app[SERVICES], conversation_id)
    found = next((item for item in offered if item.name == call.body.template), None)
    if found is None:
        names = ", ".join(item.name for item in offered) or "none"
        raise InvalidInput(
            f"{name} has no template {call.body.template!r}; templates: {names}",
            field="template",
        )
    return found.fill(call.body.variables)


@routes.get(
    "/api/v1/conversations/{id}/reply-options",
    summary="How the customer can be answered now: channels, reply windows, templates",
    response=ReplyOptionsOut,
)
async def reply_options(call: Call[NoBody, NoBody]) -> ReplyOptionsOut:
    conversation_id = call.path_int("id")
    registry = call.request.app[REGISTRY]
    async with call.sessions() as session:
        conversation = await conversations.get_conversation(session, call.actor, conversation_id)
        addresses = await reply_rules.addresses_of(session, conversation.contact_id)
        default_channel = await default_reply_channel(session, call.actor, conversation)
        options = []
        for facts in channels.catalog().senders():
            recipient = addresses.get(facts.identity_kind or "")
            if recipient is None:
                continue
            window = await reply_rules.reply_window(session, conversation.contact_id, facts)
            opted_out = await reply_rules.opt_out_of(session, facts.identity_kind or "", recipient)
            options.append((facts, recipient, window, opted_out))
    out = []
    for facts, recipient, window, opted_out in options:
        channel = registry.get(facts.name)
        templates = (
            await channel.templates(call.request.app[SERVICES], conversation_id)
            if channel is not None and Capability.TEMPLATES in facts.sends
            else ()
        )
        out.append(
            ReplyOptionOut(
                channel=facts.name,
                label=facts.label,
                recipient=recipient,
                window=WindowOut(**asdict(window)) if window is not None else None,
                opted_out=(opted_out.opt_out_reason or "opted out") if opted_out else None,
                templates=[
                    TemplateOut(name=item.name, text=item.text, variables=list(item.variables))
                    for item in templates
                ],
            )
        )
    return ReplyOptionsOut(default_channel=default_channel, options=out)


@routes.post(
    "/api/v1/outbox/{id}/retry",
    summary="Send a failed message again (whoever may see its conversation); audited",
    response=OutboxOut,
    errors=(409,),
)
async def retry(call: Call[NoBody, NoBody]) -> OutboxOut:
    async with call.sessions() as session, session.begin():
        item = await delivery.retry_failed(session, call.actor, call.path_int("id"))
    return OutboxOut.model_validate(item)
