"""The live event stream for the console and monitor: GET /ws (a websocket).

Each socket forwards only the events its caller may see (`core.visibility.sees_event`), from
the event's type and labels, without a query per event. It knows its operator's role and
queues from the database, read when it opens and again when they may have changed
(`queue.*`, its own `operator.updated`, `resync`); a socket whose operator was deactivated or
given another role (which signs them out) is closed. The sockets of a process are fed by one
fan-out (`web.live_sockets`): this handler registers its socket there and reads what the
client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from aiohttp import WSCloseCode, WSMsgType, web

from core.events import Event
from web.api import ANYONE_SIGNED_IN, ApiRoutes, Call, NoBody
from web.keys import CONSOLES, LIVE
from web.origins import origin_allowed

log = logging.getLogger(__name__)

routes = ApiRoutes(tag="live")


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
    # hold about 110 KiB per socket (bench/websockets.py); and the fan-out writes frames
    # without waiting, which a compressor could make it do.
    socket = web.WebSocketResponse(heartbeat=30, compress=False)
    await socket.prepare(request)
    sockets = request.app[LIVE]
    live = sockets.open(request, socket, call.actor)
    if live is None:
        return socket  # the client left before it could be registered
    operator_id = call.actor.operator_id
    consoles = request.app[CONSOLES]
    # A task: it runs once the socket is registered, so the socket hears of the presence
    # that coming back may restore.
    opening = asyncio.create_task(consoles.opened(operator_id)) if operator_id else None
    try:
        await _drain(socket)
    finally:
        sockets.discard(live)
        if opening is not None and operator_id is not None:
            await opening
            await consoles.closed(operator_id)
    return socket


async def close_sockets(app: web.Application) -> None:
    """On shutdown, tell open consoles to reconnect instead of waiting out their heartbeat."""
    sockets = app.get(LIVE)
    if sockets is not None:  # None: the app did not get as far as taking sockets
        await sockets.close_all(WSCloseCode.GOING_AWAY, b"server shutting down")


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
