"""The open live-event websockets of a process (GET /ws) and the one fan-out to them.

A process holds one subscription to its event bus, whatever the number of consoles. One task
takes what the bus has queued (a transaction's events come together) and, in one pass over
the open sockets, writes to each the events its viewer may see (`core.visibility.sees_event`,
from the viewer kept with the socket: its actor and member queues, read from the database when
it opens and again when they may have changed). Each event is encoded once, as the websocket
frame every socket gets (a server's frames are unmasked, and `/ws` declines compression), and
a socket's frames of one pass go to its transport in one write. There is no task per socket,
and nothing in the pass waits: a write only puts bytes in the transport's buffer.

A socket leaves that fast path while it has anything outstanding: its viewer to read (when it
opens, and on `queue.*`, its own `operator.updated` or `resync`: a database read) or a client
that reads more slowly than events come (its transport over the write buffer's high-water
mark, so its protocol is paused). Its events then wait, in order and judged only when their
turn comes, in a backlog of its own, which a task of its own works through (reading the viewer
where an event may change it, writing through aiohttp's writer, which honours the flow
control) before handing the socket back to the fast path. A socket more than `max_behind`
events behind is closed with 1013 (try again later): the console reconnects, and its `hello`
makes it reload what it shows. A closing socket whose client does not take the close frame is
cut after `CLOSE_TIMEOUT` seconds. A slow client never delays the others, and costs at most
its backlog.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from core.audit import Actor
from core.db import SessionFactory
from core.event_types import OPERATOR_UPDATED, QUEUE_CREATED, QUEUE_UPDATED, RESYNC
from core.events import Event
from core.logfields import log_fields
from core.models import Operator, Role
from core.queues import queue_ids_of
from core.visibility import sees_event

log = logging.getLogger(__name__)

# Events a socket may be behind by (waiting for its client or its viewer) before it is closed.
MAX_BEHIND = 1000
# Seconds a socket closed by the server is given to say goodbye before its connection is cut.
CLOSE_TIMEOUT = 5.0
# Events after which a socket reads its operator's role and queues again.
_MEMBERSHIP_EVENTS = frozenset({QUEUE_CREATED, QUEUE_UPDATED, RESYNC})


def event_message(event: Event) -> dict[str, object]:
    return {"type": event.type, "ids": event.ids, "labels": event.labels}


def encoded(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode()


def text_frame(payload: bytes) -> bytes:
    """`payload` as one websocket text frame from a server (RFC 6455 5.2: final, unmasked,
    uncompressed)."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event on its way: the event (to judge), its message and its frame, made once."""

    event: Event
    payload: bytes
    frame: bytes

    @classmethod
    def of(cls, event: Event) -> Outgoing:
        payload = encoded(event_message(event))
        return cls(event, payload, text_frame(payload))


async def read_viewer(sessions: SessionFactory, actor: Actor) -> frozenset[int] | None:
    """The member queues of the caller as the database knows them now; None when the operator
    is gone, deactivated or has another role than when the socket opened."""
    if actor.operator_id is None:
        return frozenset()
    async with sessions() as session:
        operator = await session.get(Operator, actor.operator_id)
        if operator is None or not operator.active or Role(operator.role) != actor.role:
            return None
        return frozenset(await queue_ids_of(session, operator.id))


def may_change_viewer(actor: Actor, event: Event) -> bool:
    if actor.operator_id is None:
        return False
    if event.type == OPERATOR_UPDATED:
        return event.ids.get("operator") == actor.operator_id
    return event.type in _MEMBERSHIP_EVENTS


@dataclass(eq=False)
class LiveSocket:
    """An open socket and who watches it."""

    socket: web.WebSocketResponse
    # The connection's transport and protocol, whose write buffer says whether a frame can be
    # handed over now.
    transport: asyncio.Transport
    protocol: BaseProtocol
    actor: Actor
    # The caller's member queues; None until read.
    queues: frozenset[int] | None = None
    # What waits for the socket while `catching_up` runs, in order, not yet judged.
    backlog: deque[Outgoing] = field(default_factory=deque)
    catching_up: asyncio.Task[None] | None = None
    # False once the socket is done: its catch-up, if any, stops at its next step.
    registered: bool = True


class LiveSockets:
    """The open live sockets of this process: app state (`web.keys.LIVE`)."""

    def __init__(self, sessions: SessionFactory, max_behind: int = MAX_BEHIND) -> None:
        self._sessions = sessions
        self._max_behind = max_behind
        self._sockets: dict[LiveSocket, None] = {}  # insertion-ordered set
        # The catch-ups and closings under way, waited for on shutdown.
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._sockets)

    def open(
        self, request: web.BaseRequest, socket: web.WebSocketResponse, actor: Actor
    ) -> LiveSocket | None:
        """Register a prepared socket (without compression): it hears of every event from now
        on. Its viewer is read first, then it gets `hello` and what came meanwhile (or is
        closed: signed out). None if its connection is already gone."""
        if socket.compress:
            # A compressed frame may wait for the compressor: not for the fast path.
            raise ValueError("live sockets are opened without per-message deflate")
        transport = request.transport
        if transport is None:
            return None
        live = LiveSocket(socket, transport, request.protocol, actor)
        self._sockets[live] = None
        hello = encoded({"type": "hello", "ids": {}, "labels": {"role": actor.role}})
        live.catching_up = self._start(self._catch_up(live, hello))
        return live

    def discard(self, live: LiveSocket) -> None:
        """The socket is done (its client closed it): no more events for it. A catch-up under
        way is not cancelled (it may be reading the database); it stops at its next step."""
        self._sockets.pop(live, None)
        live.registered = False
        live.backlog.clear()

    async def close_all(self, code: int, message: bytes) -> None:
        """Close every socket (shutdown), each given `CLOSE_TIMEOUT` seconds at most, and wait
        for their catch-ups to end. One after the other, from the shutdown's own task, as
        before: closing them from tasks of their own let the app's cleanup run before their
        handlers had recorded the consoles closed (a connection left open on SQLite)."""
        sockets = list(self._sockets)
        for live in sockets:
            self.discard(live)
        for live in sockets:
            await self._close(live, code, message)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    def _start(self, work: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, events: asyncio.Queue[Event]) -> None:
        """Forward the events of `events` (the process's one bus subscription) until
        cancelled. What is queued already (a transaction's events, a burst) goes in one pass."""
        while True:
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            try:
                self.fan_out(batch)
            except Exception:
                log.exception("live fan-out failed", extra=log_fields(events=len(batch)))

    def fan_out(self, events: Sequence[Event]) -> None:
        """`events`, in order, to every socket, each the ones it may see, in one write per
        socket. Nothing here waits on a client."""
        items = [Outgoing.of(event) for event in events]
        for live in tuple(self._sockets):
            if live.catching_up is not None:
                self._enqueue(live, items)
                continue
            queues = live.queues
            if queues is None:  # not the case: read before its first catch-up ended
                continue
            seen: list[Outgoing] = []
            rest: Sequence[Outgoing] = ()
            for index, item in enumerate(items):
                if may_change_viewer(live.actor, item.event):
                    # Its viewer is read off this pass; this event and those after it wait.
                    rest = items[index:]
                    break
                if sees_event(live.actor, queues, item.event):
                    seen.append(item)
            if seen and not self._write(live, seen):
                # Its client is behind: these wait for it, in order, with what follows.
                rest = [*seen, *rest]
            if rest:
                self._behind(live, rest)

    def _write(self, live: LiveSocket, items: list[Outgoing]) -> bool:
        """Hand the frames to the socket's transport; False if its protocol is paused (the
        buffer over its high-water mark: the client reads more slowly than events come)."""
        if live.socket.closed or live.transport.is_closing():
            self.discard(live)  # gone; its handler ends too
            return True
        if live.protocol.writing_paused:
            return False
        if len(items) == 1:
            live.transport.write(items[0].frame)
        else:
            live.transport.write(b"".join(item.frame for item in items))
        return True

    def _behind(self, live: LiveSocket, items: Sequence[Outgoing]) -> None:
        """The socket leaves the fast path, `items` first in its backlog."""
        if self._enqueue(live, items):
            live.catching_up = self._start(self._catch_up(live))

    def _enqueue(self, live: LiveSocket, items: Sequence[Outgoing]) -> bool:
        """Add to the socket's backlog; False (and the socket closed) if that makes it too
        far behind."""
        if len(live.backlog) + len(items) > self._max_behind:
            log.warning(
                "closing a live socket too far behind",
                extra=log_fields(operator_id=live.actor.operator_id, behind=len(live.backlog)),
            )
            self.discard(live)
            self._start(
                self._close(live, WSCloseCode.TRY_AGAIN_LATER, b"too far behind: reconnect")
            )
            return False
        live.backlog.extend(items)
        return True

    async def _catch_up(self, live: LiveSocket, hello: bytes | None = None) -> None:
        """Work through the socket's backlog (after reading its viewer and saying hello, for a
        socket that opens), then hand it back to the fan-out's fast path. Events that come
        meanwhile join the backlog, so each is judged by the viewer of its turn."""
        try:
            if hello is not None and not await self._read_viewer(live):
                return
            if hello is not None:
                await live.socket.send_frame(hello, WSMsgType.TEXT)
            while live.registered and live.backlog:
                item = live.backlog.popleft()
                if may_change_viewer(live.actor, item.event) and not await self._read_viewer(live):
                    return
                if live.queues is not None and sees_event(live.actor, live.queues, item.event):
                    # aiohttp's writer waits while the transport's buffer is over its
                    # high-water mark: the flow control.
                    await live.socket.send_frame(item.payload, WSMsgType.TEXT)
        except ConnectionResetError:
            self.discard(live)  # the client went away; its handler ends too
        except Exception:
            # The viewer could not be read (the database): the console reconnects and reloads.
            log.exception(
                "live socket failed", extra=log_fields(operator_id=live.actor.operator_id)
            )
            self.discard(live)
            await self._close(live, WSCloseCode.INTERNAL_ERROR, b"server error: reconnect")
        finally:
            if live.catching_up is asyncio.current_task():
                live.catching_up = None

    async def _read_viewer(self, live: LiveSocket) -> bool:
        """Read the socket's viewer again; False if the socket is done meanwhile, or closed
        now because its operator was deactivated or given another role (signed out)."""
        queues = await read_viewer(self._sessions, live.actor)
        if not live.registered:
            return False
        if queues is None:
            self.discard(live)
            await self._close(live, WSCloseCode.POLICY_VIOLATION, b"signed out")
            return False
        live.queues = queues
        return True

    async def _close(self, live: LiveSocket, code: int, message: bytes) -> None:
        """Close with `code`; a client that does not take the close frame in time is cut off."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await live.socket.close(code=code, message=message)
        except TimeoutError:
            live.transport.abort()
        except ConnectionResetError:
            pass
