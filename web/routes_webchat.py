"""The website chat's HTTP side: what the widget (web/static/widget/) calls, and the
operators' typing signal.

Every widget route is under `/webchat/{account}/` and is authenticated before anything in the
request is parsed (`web/webchat_guard.py`: the widget account enabled, the request's `Origin`
one of its allowed origins, the visitor's token this widget's; CORS headers for the allowed
origin only). Only `session` takes no token: it is where a visitor gets one.

Abuse: requests per IP and per visitor are limited (429 with Retry-After), messages and
attachments by size and type; a transcript goes only to the email the visitor gave. What a
visitor reads is `channels.webchat.service.visitor_messages`: their own chats, and of the
team only the names of who answered.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from channels.webchat import parse, service
from channels.webchat.parse import CHANNEL
from channels.webchat.visitors import key_from_secret, new_visitor, read_token, token_of
from core import outbox
from core.channel_accounts import (
    find_account,
    storing_heard_from,
)
from core.conversations import get_conversation
from core.db import transaction
from core.errors import InvalidInput, NotFound
from core.event_types import (
    CONVERSATION_TYPING,
    INTERACTION_CREATED,
    INTERACTION_EDITED,
)
from core.events import Event, emit
from core.i18n import N_, negotiate, translator
from core.i18n_extract import from_javascript
from core.ingest import ingest
from core.models import Conversation, utcnow
from core.operators import get_operator
from core.visibility import conversation_labels
from routing.availability import chat_availability
from web.api import (
    ANYONE_SIGNED_IN,
    PUBLIC,
    ApiRoutes,
    Call,
    NoBody,
    error_body,
    json_response,
)
from web.keys import ATTACHMENTS, BUS, INGEST_POLICY, SERVICES
from web.ratelimit import enforce_key
from web.webchat_guard import (
    VisitorCall,
    Widget,
    attachment_limit,
    translated,
    visitor_guard,
    widget_guard,
)
from web.ws import events_until_closed

log = logging.getLogger(__name__)

routes = ApiRoutes(tag="webchat")

WIDGET_DIR = Path(__file__).resolve().parent / "static" / "widget"
MESSAGES_PER_VISITOR_PER_MINUTE = 20
TRANSCRIPTS_PER_VISITOR_PER_HOUR = 3


@routes.route(
    "OPTIONS",
    "/webchat/{account}/{endpoint:.+}",
    summary="CORS preflight of the widget's calls (allowed origins only)",
    roles=PUBLIC,
    errors=(403,),
)
async def preflight(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    widget = await widget_guard(call.request)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": widget.origin,
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


# --- a page to try the widget on -----------------------------------------------------------------

TRY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data:; frame-ancestors 'none'"
)


@routes.get(
    "/webchat/{account}/try",
    summary="A page showing the widget as visitors see it (where this server is an allowed origin)",
    roles=PUBLIC,
)
async def try_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    name = call.request.match_info["account"]
    async with call.sessions() as session:
        row = await find_account(session, CHANNEL, name) if name.isprintable() else None
    if row is None:
        raise NotFound(f"no website chat {name!r}")
    translate = translator(negotiate(call.request.headers.get("Accept-Language")))
    title = translate.gettext(N_("Try the website chat"))
    text = translate.gettext(
        N_(
            "This page shows the chat widget as your website's visitors see it: the bubble is "
            "in the corner. It works when this server's address is one of the widget's allowed "
            "origins."
        )
    )
    source = f"/static/widget/widget.js?account={quote(name, safe='')}"
    page = (
        f'<!doctype html>\n<html lang="{translate.locale}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(text)}</p></main>"
        f'<script type="module" src="{escape(source)}"></script></body></html>'
    )
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": TRY_POLICY, "Cache-Control": "no-store"},
    )


# --- session -----------------------------------------------------------------------------------


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    visitor_token: str | None = Field(default=None, max_length=200)
    languages: list[str] = Field(default_factory=list, max_length=20)
    page: str | None = Field(default=None, max_length=2000)


@functools.cache
def widget_msgids() -> tuple[str, ...]:
    """The texts the widget's scripts show (their t("...") calls)."""
    found: list[str] = []
    for path in sorted(WIDGET_DIR.glob("*.js")):
        found += [item.msgid for item in from_javascript(path.read_text("utf-8"), path.name)]
    return tuple(dict.fromkeys(found))


def widget_messages(locale: str) -> dict[str, str]:
    translate = translator(locale)
    return {msgid: translate.gettext(msgid) for msgid in widget_msgids()}


@routes.post(
    "/webchat/{account}/session",
    summary="The widget starts: a visitor token (kept, or new), its texts, whether anyone is on",
    roles=PUBLIC,
    body=SessionIn,
    guard=widget_guard,
    errors=(403, 429),
)
async def start_session(call: Call[SessionIn, NoBody]) -> dict[str, Any]:
    widget: Widget = call.guarded
    key = key_from_secret(call.settings.secret_key)
    given = call.body.visitor_token
    visitor = read_token(key, given, widget.account.id) if given else None
    visitor = visitor or new_visitor(widget.account.id)
    wanted = ",".join(call.body.languages) or call.request.headers.get("Accept-Language")
    locale = negotiate(wanted)
    translate = translator(locale)
    async with call.sessions() as session:
        availability = await chat_availability(session, widget.queue_id, utcnow())
        profile = await service.visitor_profile(session, visitor)
    settings = widget.settings
    return {
        "visitor_token": token_of(key, visitor),
        "locale": locale,
        "messages": widget_messages(locale),
        "config": {
            "title": settings.title or translate.gettext(N_("Chat with us")),
            "greeting": settings.greeting
            or translate.gettext(N_("Hello! How can we help you today?")),
            "prechat": settings.prechat,
            "consent_text": settings.consent_text,
            "max_attachment_bytes": attachment_limit(widget, call.settings),
            "attachment_types": settings.attachment_types,
        },
        "online": availability.online,
        "offline_reason": availability.reason,
        "opens_at": availability.opens_at.isoformat() if availability.opens_at else None,
        "visitor": profile,
    }


# --- messages --------------------------------------------------------------------------------


class AfterQuery(BaseModel):
    after: int = Field(default=0, ge=0, le=2**62)


def _attachment_base(call: Call[Any, Any]) -> str:
    return f"/webchat/{call.request.match_info['account']}/attachments"


@routes.get(
    "/webchat/{account}/messages",
    summary="The visitor's chat, oldest first, after a message id (100 at a time)",
    roles=PUBLIC,
    query=AfterQuery,
    guard=visitor_guard,
    errors=(401, 403, 429),
)
async def list_messages(call: Call[NoBody, AfterQuery]) -> dict[str, Any]:
    who: VisitorCall = call.guarded
    async with call.sessions() as session:
        found = await service.visitor_messages(session, who.visitor, after=call.query.after)
    base = _attachment_base(call)
    return {"items": [item.as_json(base) for item in found]}


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(max_length=64)
    text: str = Field(max_length=parse.MAX_TEXT * 2)


@routes.post(
    "/webchat/{account}/messages",
    summary="The visitor writes; a repeated client_id is stored once (200 with the stored one)",
    roles=PUBLIC,
    body=MessageIn,
    guard=visitor_guard,
    status=201,
    also=(200,),
    errors=(401, 403, 429),
)
async def post_message(call: Call[MessageIn, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    enforce_key(
        call.request, "webchat-messages", MESSAGES_PER_VISITOR_PER_MINUTE, who.visitor.visitor_id
    )
    try:
        event = parse.visitor_message(
            who.visitor,
            client_id=call.body.client_id,
            text=call.body.text,
            language=who.locale,
            page=call.request.headers.get("Referer"),
            queue_id=who.widget.queue_id,
        )
    except InvalidInput as exc:
        return translated(exc, who.translate)
    return await _store(call, who, event)


async def _store(call: Call[Any, Any], who: VisitorCall, event: Any) -> web.StreamResponse:
    # Health: a widget whose visitors' messages arrive works (the admin page, /healthz).
    heard = call.request.app[SERVICES].heard
    async with storing_heard_from(call.sessions, who.widget.account.id, heard) as session:
        result = await ingest(session, event, call.request.app[INGEST_POLICY])
    async with call.sessions() as session:
        found = await service.visitor_messages(session, who.visitor, only=[result.interaction_id])
    body = found[0].as_json(_attachment_base(call)) if found else {"id": result.interaction_id}
    return json_response(body, status=201 if result.created else 200)


@routes.post(
    "/webchat/{account}/attachments",
    summary="The visitor sends a file (multipart: client_id, file, optional text)",
    roles=PUBLIC,
    guard=visitor_guard,
    status=201,
    also=(200,),
    errors=(400, 401, 403, 413, 429),
)
async def post_attachment(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    enforce_key(
        call.request, "webchat-messages", MESSAGES_PER_VISITOR_PER_MINUTE, who.visitor.visitor_id
    )
    translate = who.translate
    limit = attachment_limit(who.widget, call.settings)
    if limit <= 0:
        return translated(InvalidInput(N_("this chat takes no files"), field="file"), translate)
    fields: dict[str, str] = {}
    upload: tuple[str, str, bytes] | None = None
    try:
        reader = await call.request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "file" and part.filename:
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                data = await part.read(decode=False)
                if len(data) > limit:
                    error = InvalidInput(N_("the file is too large"), field="file")
                    return web.json_response(
                        error_body(error.code, translate.gettext(error.message), {
                            "file": translate.gettext(error.message)
                        }),
                        status=413,
                    )  # fmt: skip
                upload = (part.filename[:200], content_type, bytes(data))
            elif part.name in ("client_id", "text"):
                fields[part.name] = (await part.text())[: parse.MAX_TEXT * 2]
    except (ValueError, AssertionError):
        return translated(InvalidInput(N_("the upload could not be read"), field="file"), translate)
    if upload is None:
        return translated(InvalidInput(N_("choose a file"), field="file"), translate)
    filename, content_type, data = upload
    if not who.widget.settings.accepts_type(content_type):
        return translated(
            InvalidInput(N_("files of this type cannot be sent here"), field="file"), translate
        )
    key = await call.request.app[ATTACHMENTS].put(data)
    entry = {"key": key, "filename": filename, "content_type": content_type, "size": len(data)}
    try:
        event = parse.visitor_message(
            who.visitor,
            client_id=fields.get("client_id", ""),
            text=fields.get("text", ""),
            attachments=[entry],
            language=who.locale,
            queue_id=who.widget.queue_id,
        )
    except InvalidInput as exc:
        return translated(exc, translate)
    return await _store(call, who, event)


@routes.get(
    "/webchat/{account}/attachments/{interaction_id}/{index}",
    summary="A file of the visitor's chat",
    roles=PUBLIC,
    guard=visitor_guard,
    errors=(401, 403, 429),
)
async def get_attachment(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    async with call.sessions() as session:
        entry = await service.attachment_of(
            session, who.visitor, call.path_int("interaction_id"), call.path_int("index")
        )
    if entry is None or not entry.get("key"):
        raise NotFound("no such file in this chat")
    data = await call.request.app[ATTACHMENTS].get(str(entry["key"]))
    name = str(entry.get("filename") or "file").replace('"', "")
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- the visitor's details, typing, reading, transcript -----------------------------------------


class PrechatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=400)
    email: str = Field(default="", max_length=320)
    phone: str = Field(default="", max_length=50)
    consent: bool = False


@routes.post(
    "/webchat/{account}/prechat",
    summary="The visitor's name, email or phone, and consent: they join the person's history",
    roles=PUBLIC,
    body=PrechatIn,
    guard=visitor_guard,
    errors=(401, 403, 429),
)
async def post_prechat(call: Call[PrechatIn, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    async with call.sessions() as session:
        availability = await chat_availability(session, who.widget.queue_id, utcnow())
    try:
        form = parse.prechat(
            who.widget.settings,
            name=call.body.name,
            email=call.body.email,
            phone=call.body.phone,
            consent=call.body.consent,
            default_region=call.request.app[INGEST_POLICY].default_region,
            offline=not availability.online,
        )
    except InvalidInput as exc:
        return translated(exc, who.translate)
    async with transaction(call.sessions) as session:
        await service.apply_prechat(session, who.visitor, form)
        profile = await service.visitor_profile(session, who.visitor)
    return json_response({"visitor": profile})


class TypingIn(BaseModel):
    typing: bool


@routes.post(
    "/webchat/{account}/typing",
    summary="The visitor is typing (or stopped): the operator's console shows it",
    roles=PUBLIC,
    body=TypingIn,
    guard=visitor_guard,
    status=204,
    errors=(401, 403, 429),
)
async def post_typing(call: Call[TypingIn, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    async with transaction(call.sessions) as session:
        ids = await service.conversation_ids(session, who.visitor)
        conversation = await session.get(Conversation, ids[-1]) if ids else None
        if conversation is not None:
            await _emit_typing(session, conversation, "customer", typing=call.body.typing)
    return web.Response(status=204)


async def _emit_typing(
    session: AsyncSession,
    conversation: Conversation,
    who: str,
    *,
    typing: bool,
    operator_id: int | None = None,
    name: str | None = None,
) -> None:
    """`conversation.typing`: the "customer" or an "operator" is typing, or stopped."""
    labels = {
        "who": who,
        "typing": "true" if typing else "false",
        **({"name": name} if name is not None else {}),
        **conversation_labels(conversation),
    }
    ids = {"conversation": conversation.id}
    if operator_id is not None:
        ids["operator"] = operator_id
    await emit(session, Event(CONVERSATION_TYPING, ids, labels))


class ReadIn(BaseModel):
    up_to: int = Field(ge=1, le=2**62)


@routes.post(
    "/webchat/{account}/read",
    summary="The visitor has read the answers up to this message",
    roles=PUBLIC,
    body=ReadIn,
    guard=visitor_guard,
    status=204,
    errors=(401, 403, 429),
)
async def post_read(call: Call[ReadIn, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    async with transaction(call.sessions) as session:
        await service.mark_read(session, who.visitor, call.body.up_to)
    return web.Response(status=204)


@routes.post(
    "/webchat/{account}/transcript",
    summary="Email the chat to the address the visitor gave in the pre-chat form",
    roles=PUBLIC,
    guard=visitor_guard,
    status=202,
    errors=(401, 403, 429),
)
async def post_transcript(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    translate = who.translate
    async with call.sessions() as session:
        profile = await service.visitor_profile(session, who.visitor)
        found = await service.visitor_messages(session, who.visitor, limit=1000)
        chats = await service.conversation_ids(session, who.visitor)
    email = profile.get("email")
    if not email:
        error = InvalidInput(N_("leave your email address first"), field="email")
        return translated(error, translate)
    if not found:
        return translated(InvalidInput(N_("there is nothing to send yet"), field="chat"), translate)
    enforce_key(
        call.request,
        "webchat-transcript",
        TRANSCRIPTS_PER_VISITOR_PER_HOUR,
        who.visitor.visitor_id,
        window=3600.0,
    )
    team, you = translate.gettext(N_("Team")), translate.gettext(N_("You"))
    lines = [
        f"[{item.at:%Y-%m-%d %H:%M} UTC] "
        f"{(item.author or team) if item.direction == 'out' else you}: {item.text}"
        for item in found
    ]
    title = who.widget.settings.title or translate.gettext(N_("Chat with us"))
    async with transaction(call.sessions) as session:
        # Filed with their chat: the person's export and erasure cover the transcript too.
        await outbox.enqueue(
            session,
            channel="email",
            recipient=email,
            conversation_id=chats[-1] if chats else None,
            payload={
                "subject": translate.gettext(N_("Your chat: {title}"), title=title),
                "text": "\n\n".join(lines),
                "html": None,
            },
        )
    return web.Response(status=202)


# --- live ---------------------------------------------------------------------------------------


@routes.get(
    "/webchat/{account}/live",
    summary="Websocket: the visitor's new messages and the operator's typing (token in ?token=)",
    roles=PUBLIC,
    guard=visitor_guard,
    errors=(401, 403, 429),
)
async def live(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    who: VisitorCall = call.guarded
    request = call.request
    # No per-message deflate: the messages are ids of a hundred bytes, and compression would
    # hold about 110 KiB per socket (bench/websockets.py).
    socket = web.WebSocketResponse(heartbeat=30, compress=False)
    await socket.prepare(request)
    async with request.app[BUS].subscribe() as queue:
        async with call.sessions() as session:
            mine = set(await service.conversation_ids(session, who.visitor))
        async with contextlib.aclosing(events_until_closed(socket, queue)) as events:
            # The visitor's page closing while a message is on its way ends the socket, quietly.
            with contextlib.suppress(ConnectionResetError):
                async for event in events:
                    await _forward(call, who, socket, mine, event)
    return socket


async def _forward(
    call: Call[NoBody, NoBody],
    who: VisitorCall,
    socket: web.WebSocketResponse,
    mine: set[int],
    event: Event,
) -> None:
    """Send the visitor what `event` means for them: a message of their chats (never a note:
    `visitor_messages` is the rule), or the operator typing in one. `mine` is their chats'
    ids, grown when an event names the visitor (their first message began a chat)."""
    conversation = event.ids.get("conversation")
    if event.type in (INTERACTION_CREATED, INTERACTION_EDITED):
        if conversation is not None and event.labels.get("visitor") == who.visitor.visitor_id:
            mine.add(conversation)
        if conversation not in mine:
            return
        async with call.sessions() as session:
            found = await service.visitor_messages(
                session, who.visitor, only=[int(event.ids["interaction"])]
            )
        for item in found:
            message = item.as_json(_attachment_base(call))
            await socket.send_json({"type": "message", "message": message})
    elif (
        event.type == CONVERSATION_TYPING
        and conversation in mine
        and event.labels.get("who") == "operator"
    ):
        await socket.send_json(
            {
                "type": "typing",
                "typing": event.labels.get("typing") == "true",
                "author": event.labels.get("name") or None,
            }
        )


# --- the operator's side ------------------------------------------------------------------------


class OperatorTypingIn(BaseModel):
    typing: bool


@routes.post(
    "/api/v1/conversations/{conversation_id}/typing",
    summary="The operator is typing an answer (or stopped): a website chat visitor sees it",
    roles=ANYONE_SIGNED_IN,
    body=OperatorTypingIn,
    status=204,
)
async def operator_typing(call: Call[OperatorTypingIn, NoBody]) -> web.StreamResponse:
    async with transaction(call.sessions) as session:
        conversation = await get_conversation(session, call.actor, call.path_int("conversation_id"))
        operator_id = call.actor.operator_id
        name = (await get_operator(session, operator_id)).name if operator_id is not None else ""
        await _emit_typing(
            session,
            conversation,
            "operator",
            typing=call.body.typing,
            operator_id=operator_id,
            name=name,
        )
    return web.Response(status=204)
