"""The agent console's and the supervisor monitor's API: inbox and read markers, canned
responses, mentions' notifications, a message's HTML view, the monitor, merge suggestions."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import canned, duplicates, inbox, mentions, monitor
from core.canned import CannedChanges
from core.models import CannedResponse
from web.api import SUPERVISORS, ApiRoutes, Call, NoBody
from web.routes_status import canned_link_maker
from web.schemas import ContactOut
from web.schemas_console import (
    CannedListOut,
    CannedOut,
    HourlyServiceLevelOut,
    InboxConversationOut,
    InboxOut,
    InboxSectionOut,
    MergeSuggestionOut,
    MergeSuggestionsOut,
    MonitorCallsOut,
    MonitorOperatorOut,
    MonitorOut,
    MonitorQueueOut,
    NotificationOut,
    NotificationsOut,
    ReadAllOut,
    ReadMarkerOut,
    RenderedOut,
    VolumeOut,
)

routes = ApiRoutes(tag="console")

# The iframe that shows a message may show its HTML and inline styles, nothing else: no
# scripts, no requests anywhere (images only as data: URIs), in a sandbox of its own.
MESSAGE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


class CannedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=200, description="part of a title or shortcut")


class NewCannedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=canned.MAX_TITLE)
    shortcut: str | None = Field(
        None, max_length=canned.MAX_SHORTCUT + 1, description="e.g. thanks, typed as /thanks"
    )
    body: str = Field(
        min_length=1,
        max_length=canned.MAX_BODY,
        description="text with placeholders such as {{contact.first_name}}",
    )
    shared: bool = Field(
        False, description="for everyone (supervisors and admins only); else your own"
    )


def _present(value: str | None) -> str | None:
    if value is None:
        raise ValueError("may not be null")
    return value


class CannedPatchBody(BaseModel):
    """Fields left out stay as they are; a null shortcut removes it."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=canned.MAX_TITLE)
    shortcut: str | None = Field(None, max_length=canned.MAX_SHORTCUT + 1)
    body: str | None = Field(None, min_length=1, max_length=canned.MAX_BODY)

    _not_null = field_validator("title", "body")(_present)


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(
        default=inbox.DEFAULT_SECTION_LIMIT,
        ge=1,
        le=inbox.MAX_SECTION_LIMIT,
        description="at most this many conversations per section",
    )


class NotificationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unread: bool = Field(False, description="only unread ones")
    limit: int = Field(default=50, ge=1, le=200)


class MonitorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tz: str = Field("UTC", max_length=64, description='IANA time zone of "today" and its hours')


def _canned_out(row: CannedResponse) -> CannedOut:
    return CannedOut(
        id=row.id,
        title=row.title,
        shortcut=row.shortcut,
        body=row.body,
        shared=row.owner_id is None,
        owner_id=row.owner_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- canned responses ------------------------------------------------------------------------


@routes.get(
    "/api/v1/canned-responses",
    summary="Canned responses you may use: the shared ones and your own, by title",
    query=CannedQuery,
    response=CannedListOut,
)
async def list_canned(call: Call[NoBody, CannedQuery]) -> CannedListOut:
    async with call.sessions() as session:
        rows = await canned.list_canned(session, call.actor, text=call.query.q)
    return CannedListOut(
        items=[_canned_out(row) for row in rows], placeholders=list(canned.PLACEHOLDERS)
    )


@routes.post(
    "/api/v1/canned-responses",
    summary="Add a canned response: your own, or a shared one (supervisors and admins)",
    body=NewCannedBody,
    response=CannedOut,
    status=201,
    errors=(409,),
)
async def create_canned(call: Call[NewCannedBody, NoBody]) -> CannedOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        row = await canned.create_canned(
            session,
            call.actor,
            title=body.title,
            shortcut=body.shortcut,
            body=body.body,
            shared=body.shared,
        )
    return _canned_out(row)


@routes.get(
    "/api/v1/canned-responses/{id}",
    summary="One canned response (shared, or your own)",
    response=CannedOut,
)
async def get_canned(call: Call[NoBody, NoBody]) -> CannedOut:
    async with call.sessions() as session:
        row = await canned.get_canned(session, call.actor, call.path_int("id"))
    return _canned_out(row)


@routes.patch(
    "/api/v1/canned-responses/{id}",
    summary="Change your own canned response, or a shared one (supervisors and admins)",
    body=CannedPatchBody,
    response=CannedOut,
    errors=(409,),
)
async def update_canned(call: Call[CannedPatchBody, NoBody]) -> CannedOut:
    changes = CannedChanges(**call.body.model_dump(exclude_unset=True))
    async with call.sessions() as session, session.begin():
        row = await canned.update_canned(session, call.actor, call.path_int("id"), changes)
    return _canned_out(row)


@routes.delete(
    "/api/v1/canned-responses/{id}",
    summary="Delete your own canned response, or a shared one (supervisors and admins)",
    status=204,
)
async def delete_canned(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await canned.delete_canned(session, call.actor, call.path_int("id"))
    return web.Response(status=204)


@routes.post(
    "/api/v1/conversations/{id}/canned-responses/{canned_id}/render",
    summary="A canned response filled in for this conversation (its contact, and you)",
    response=RenderedOut,
)
async def render_canned(call: Call[NoBody, NoBody]) -> RenderedOut:
    async with call.sessions() as session:
        text = await canned.render(
            session,
            call.actor,
            call.path_int("id"),
            call.path_int("canned_id"),
            status_link=canned_link_maker(call.request),
        )
    return RenderedOut(text=text)


# --- inbox and read markers --------------------------------------------------------------


@routes.get(
    "/api/v1/inbox",
    summary="Your inbox: assigned to you, your queues, unassigned in your queues; with unread",
    query=InboxQuery,
    response=InboxOut,
)
async def get_inbox(call: Call[NoBody, InboxQuery]) -> InboxOut:
    async with call.sessions() as session:
        sections = await inbox.inbox(session, call.actor, limit=call.query.limit)

    def section_out(section: inbox.InboxSection) -> InboxSectionOut:
        items = [inbox_item_out(item) for item in section.items]
        return InboxSectionOut(
            items=items,
            total=section.total,
            unread_conversations=section.unread_conversations,
            next_cursor=section.next_cursor,
        )

    return InboxOut(
        mine=section_out(sections["mine"]),
        queues=section_out(sections["queues"]),
        unassigned=section_out(sections["unassigned"]),
    )


def inbox_item_out(item: inbox.InboxItem) -> InboxConversationOut:
    """A conversation as the inbox and the views list it."""
    return InboxConversationOut.model_validate(
        {
            **{
                name: getattr(item.conversation, name)
                for name in InboxConversationOut.model_fields
                if hasattr(item.conversation, name)
            },
            "contact_display_name": item.contact_name,
            "preview": item.preview,
            "preview_direction": item.preview_direction,
            "last_interaction_at": item.last_interaction_at,
            "unread": item.unread,
        }
    )


@routes.post(
    "/api/v1/conversations/{id}/read",
    summary="Mark the conversation read up to its newest interaction (for you)",
    response=ReadMarkerOut,
)
async def mark_read(call: Call[NoBody, NoBody]) -> ReadMarkerOut:
    async with call.sessions() as session, session.begin():
        marker = await inbox.mark_read(session, call.actor, call.path_int("id"))
    return ReadMarkerOut.model_validate(marker)


# --- notifications ---------------------------------------------------------------------------


def _notification_out(view: mentions.NotificationView) -> NotificationOut:
    row = view.notification
    return NotificationOut(
        id=row.id,
        kind=row.kind,
        conversation_id=row.conversation_id,
        interaction_id=row.interaction_id,
        task_id=row.task_id,
        author_id=row.author_id,
        author_name=view.author_name,
        contact_display_name=view.contact_name,
        conversation_subject=view.conversation_subject,
        excerpt=view.excerpt,
        created_at=row.created_at,
        read_at=row.read_at,
    )


@routes.get(
    "/api/v1/notifications",
    summary="Your notifications (mentions, due tasks), unread first, then newest",
    query=NotificationsQuery,
    response=NotificationsOut,
)
async def list_notifications(call: Call[NoBody, NotificationsQuery]) -> NotificationsOut:
    async with call.sessions() as session:
        views, unread = await mentions.list_notifications(
            session, call.actor, unread_only=call.query.unread, limit=call.query.limit
        )
    return NotificationsOut(items=[_notification_out(view) for view in views], unread_count=unread)


@routes.post(
    "/api/v1/notifications/{id}/read",
    summary="Mark one of your notifications read",
    response=NotificationOut,
)
async def read_notification(call: Call[NoBody, NoBody]) -> NotificationOut:
    async with call.sessions() as session, session.begin():
        view = await mentions.mark_read(session, call.actor, call.path_int("id"))
    return _notification_out(view)


@routes.post(
    "/api/v1/notifications/read-all",
    summary="Mark all your notifications read",
    response=ReadAllOut,
)
async def read_all_notifications(call: Call[NoBody, NoBody]) -> ReadAllOut:
    async with call.sessions() as session, session.begin():
        updated = await mentions.mark_all_read(session, call.actor)
    return ReadAllOut(updated=updated)


# --- a message's HTML ------------------------------------------------------------------------


@routes.get(
    "/api/v1/interactions/{id}/html",
    summary="A message's sanitized HTML as a page for a sandboxed iframe (strict CSP)",
)
async def interaction_html(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        body = await inbox.interaction_html(session, call.actor, call.path_int("id"))
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>message</title></head><body>{body}</body></html>"
    )
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": MESSAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            # The console frames it; no other site may.
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "private, no-store",
        },
    )


# --- the monitor -----------------------------------------------------------------------------


@routes.get(
    "/api/v1/monitor",
    summary="Live queue and operator figures and today's charts (supervisors and admins)",
    roles=SUPERVISORS,
    query=MonitorQuery,
    response=MonitorOut,
)
async def get_monitor(call: Call[NoBody, MonitorQuery]) -> MonitorOut:
    async with call.sessions() as session:
        snap = await monitor.snapshot(session, call.query.tz)
    return MonitorOut(
        tz=snap.tz,
        generated_at=snap.now,
        day_start=snap.day_start,
        queues=[
            MonitorQueueOut(**{**vars(queue), "calls": MonitorCallsOut(**vars(queue.calls))})
            for queue in snap.queues
        ],
        operators=[MonitorOperatorOut(**vars(operator)) for operator in snap.operators],
        volume_today=[VolumeOut(**vars(volume)) for volume in snap.volume_today],
        service_level_today=[
            HourlyServiceLevelOut(**vars(level)) for level in snap.service_level_today
        ],
    )


# --- merge suggestions -----------------------------------------------------------------------


@routes.get(
    "/api/v1/contacts/{id}/merge-suggestions",
    summary="Other contacts that look like the same person, each with the reasons",
    response=MergeSuggestionsOut,
    errors=(409,),
)
async def merge_suggestions(call: Call[NoBody, NoBody]) -> MergeSuggestionsOut:
    async with call.sessions() as session:
        found = await duplicates.merge_suggestions(session, call.path_int("id"))
    return MergeSuggestionsOut(
        items=[
            MergeSuggestionOut(
                contact=ContactOut.model_validate(item.contact), because=item.because
            )
            for item in found
        ]
    )
