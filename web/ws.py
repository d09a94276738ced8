"""The live event stream for the console and monitor: GET /ws (a websocket).

Each socket forwards only the events its caller may see (`core.visibility.sees_event`), from
the event's type and labels, without a query per event. It knows its operator's role and
queues from the database, read when it opens and again when they may have changed
(`queue.*`, its own `operator.updated`, `resync`); a socket whose operator was deactivated or
given another role (which signs them out) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator

from aiohttp import WSCloseCode, WSMsgType, web

from core.audit import Actor
from core.event_types import OPERATOR_UPDATED, QUEUE_CREATED, QUEUE_UPDATED, RESYNC
from core.events import Event
from core.models import Operator, Role
from core.queues import queue_ids_of
from core.visibility import sees_event
from web.api import ANYONE_SIGNED_IN, ApiRoutes, Call, NoBody
from web.keys import BUS, CONSOLES, SESSIONS, SOCKETS
from web.origins import origin_allowed

log = logging.getLogger(__name__)

routes = ApiRoutes(tag="live")


def event_message(event: Event) -> dict[str, object]:
    return {"type": event.type, "ids": event.ids, "labels": event.labels}


@routes.get(
    "/ws",
    summary="Websocket of live events (ids of what changed); session cookie, same origin",
    roles=ANYONE_SIGNED_IN,
)
async def live_events(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    if not origin_allowed(request):
        raise web.HTTPForbidden(reason="websocket origin not allowed")
    # No per-message deflate: the messages are ids of a hundred bytes, and compression would
    # hold about 110 KiB per socket (bench/websockets.py).
    socket = web.WebSocketResponse(heartbeat=30, compress=False)
    await socket.prepare(request)
    request.app[SOCKETS].add(socket)
    operator_id = call.actor.operator_id
    consoles = request.app[CONSOLES]
    # A task: it runs once the socket has subscribed below, so the socket hears of the
    # presence that coming back may restore.
    opening = asyncio.create_task(consoles.opened(operator_id)) if operator_id else None
    try:
        await _forward_events(request, socket, call)
    except ConnectionResetError:
        pass  # the console went away while an event was on its way: this socket is done
    finally:
        if opening is not None and operator_id is not None:
            await opening
            await consoles.closed(operator_id)
    return socket


async def close_sockets(app: web.Application) -> None:
    """On shutdown, tell open consoles to reconnect instead of waiting out their heartbeat."""
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for socket in list(sockets):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


# Events after which a socket reads its operator's role and queues again.
_MEMBERSHIP_EVENTS = frozenset({QUEUE_CREATED, QUEUE_UPDATED, RESYNC})


async def _viewer(app: web.Application, actor: Actor) -> tuple[Actor, frozenset[int]] | None:
    """The caller as the database knows them now, with their member queues; None when the
    operator is gone, deactivated or has another role than when the socket opened."""
    if actor.operator_id is None:
        return actor, frozenset()
    async with app[SESSIONS]() as session:
        operator = await session.get(Operator, actor.operator_id)
        if operator is None or not operator.active or Role(operator.role) != actor.role:
            return None
        return actor, frozenset(await queue_ids_of(session, operator.id))


def _may_change_viewer(actor: Actor, event: Event) -> bool:
    if actor.operator_id is None:
        return False
    if event.type == OPERATOR_UPDATED:
        return event.ids.get("operator") == actor.operator_id
    return event.type in _MEMBERSHIP_EVENTS


async def _forward_events(
    request: web.Request, socket: web.WebSocketResponse, call: Call[NoBody, NoBody]
) -> None:
    async with request.app[BUS].subscribe() as queue:
        # Read after subscribing, so a membership change in between is heard of.
        viewer = await _viewer(request.app, call.actor)
        if viewer is None:
            await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
            return
        await socket.send_json({"type": "hello", "ids": {}, "labels": {"role": call.actor.role}})
        async with contextlib.aclosing(events_until_closed(socket, queue)) as events:
            async for event in events:
                if _may_change_viewer(call.actor, event):
                    viewer = await _viewer(request.app, call.actor)
                    if viewer is None:
                        await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
                        return
                actor, member_queues = viewer
                if sees_event(actor, member_queues, event):
                    await socket.send_json(event_message(event))


async def events_until_closed(
    socket: web.WebSocketResponse, queue: asyncio.Queue[Event]
) -> AsyncGenerator[Event, None]:
    """The bus's events from `queue` (a subscription), one by one, until the client closes
    the socket; what the client sends is read and ignored (so pings are answered). Use it
    inside `contextlib.aclosing`, so the reader stops when the caller does."""
    reader = asyncio.create_task(_drain(socket))
    try:
        while not socket.closed and not reader.done():
            if not queue.empty():
                # What is queued already (a transaction's events, a burst) is taken as it is:
                # a task per event and socket only to wait costs more than the send.
                yield queue.get_nowait()
                continue
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                continue
            yield getter.result()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _drain(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) client frames so pings are answered and a close is noticed."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
