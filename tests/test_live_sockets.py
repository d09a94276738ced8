"""The live websocket's one fan-out per process (web/live_sockets.py), as consoles see it:
every open socket that may see an event gets it and no other does; a console that stops
reading holds nobody else back and is disconnected once too far behind; a membership change
counts from the very next event of the queue."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestServer

from core.audit import CLI
from core.event_types import CONVERSATION_CREATED, OPERATOR_PRESENCE
from core.events import Event, emit
from core.models import Role
from core.queues import set_members
from core.visibility import Placement, audience_labels
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from web.keys import BUS, LIVE, SESSIONS
from web.live_sockets import MAX_BEHIND

# A bound so that a broken socket fails a test instead of hanging it; no timing is tested.
WAIT = 10.0


async def new_queue(app: web.Application, name: str, members: list[User]) -> int:
    async with app[SESSIONS]() as session, session.begin():
        queue = await create_queue(session, CLI, name=name)
        await set_members(session, CLI, queue.id, [user.operator.id for user in members])
        return queue.id


def conversation_created(conversation: int, queue: int) -> Event:
    return Event(
        CONVERSATION_CREATED,
        {"conversation": conversation, "contact": conversation},
        {"channel": "webform", **audience_labels([Placement(queue, None)])},
    )


def sentinel(n: int) -> Event:
    """An event every socket may see, marking the end of what a test sent."""
    return Event(OPERATOR_PRESENCE, {"operator": 0}, {"presence": f"sentinel-{n}"})


async def until_sentinel(ws: Any, n: int) -> list[dict[str, Any]]:
    """What `ws` gets up to sentinel `n` (not counted)."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await asyncio.wait_for(ws.receive_json(), WAIT)
        if message["type"] == OPERATOR_PRESENCE and message["labels"].get("presence") == (
            f"sentinel-{n}"
        ):
            return seen
        seen.append(message)


def conversations_in(messages: list[dict[str, Any]]) -> list[int]:
    return [m["ids"]["conversation"] for m in messages if m["type"] == CONVERSATION_CREATED]


async def test_an_event_reaches_every_open_socket_that_may_see_it_and_no_other(
    app: web.Application, make_user: UserFactory
) -> None:
    ann, bob, carl = [await make_user(Role.OPERATOR, name=name) for name in ("A", "B", "C")]
    sue = await make_user(Role.SUPERVISOR)
    sales = await new_queue(app, "Sales", [ann, bob])
    await new_queue(app, "Support", [carl])
    async with (
        ann.client.ws_connect("/ws") as ann_tab1,
        ann.client.ws_connect("/ws") as ann_tab2,
        bob.client.ws_connect("/ws") as bob_ws,
        carl.client.ws_connect("/ws") as carl_ws,
        sue.client.ws_connect("/ws") as sue_ws,
    ):
        sockets = (ann_tab1, ann_tab2, bob_ws, carl_ws, sue_ws)
        for ws in sockets:
            assert (await asyncio.wait_for(ws.receive_json(), WAIT))["type"] == "hello"
        app[BUS].publish(conversation_created(101, sales))
        app[BUS].publish(sentinel(1))
        heard = [conversations_in(await until_sentinel(ws, 1)) for ws in sockets]

    # Ann in both tabs, Bob (Sales) and Sue (a supervisor sees every queue); not Carl.
    assert heard == [[101], [101], [101], [], [101]]


@asynccontextmanager
async def stalled_console(server: TestServer, user: User) -> AsyncIterator[asyncio.StreamReader]:
    """A console that opens /ws, reads the handshake and its hello, and then nothing more: a
    tiny receive buffer, and a stream reader that stops taking data from the socket after
    2 KiB."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    assert server.host is not None
    assert server.port is not None
    await asyncio.get_running_loop().sock_connect(raw, (server.host, server.port))
    reader, writer = await asyncio.open_connection(sock=raw, limit=1024)
    cookies = user.client.session.cookie_jar.filter_cookies(server.make_url("/"))
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    opcode, hello = await asyncio.wait_for(next_frame(reader), WAIT)
    assert opcode == 0x1
    assert b'"hello"' in hello
    try:
        yield reader
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def next_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A server frame (unmasked, unfragmented): its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def test_a_console_that_stops_reading_holds_no_other_back_and_is_disconnected(
    app: web.Application, server: TestServer, make_user: UserFactory
) -> None:
    ann, bob = await make_user(Role.OPERATOR), await make_user(Role.OPERATOR)
    # Events of 8 KiB fill the stalled console's buffers in a few hundred.
    pad = "x" * 8192
    async with (
        stalled_console(server, ann) as stalled,
        bob.client.ws_connect("/ws", max_msg_size=0) as bob_ws,
    ):
        assert (await asyncio.wait_for(bob_ws.receive_json(), WAIT))["type"] == "hello"
        sent = 0
        # Bursts of 50, each to arrive at Bob's before the next: he is never held back,
        # while Ann's console falls ever further behind until it is let go.
        while len(app[LIVE]) == 2:
            assert sent < 20 * MAX_BEHIND, "the stalled console was never disconnected"
            for _ in range(50):
                sent += 1
                app[BUS].publish(Event(OPERATOR_PRESENCE, {"operator": sent}, {"pad": pad}))
            app[BUS].publish(sentinel(sent))
            got = await until_sentinel(bob_ws, sent)
            assert [m["ids"]["operator"] for m in got] == list(range(sent - 49, sent + 1))
        assert sent > MAX_BEHIND  # it was behind, and is out now

        # Ann's console reads again: what was on its way, then the close frame that tells it
        # to reconnect (and reload).
        opcodes: list[int] = []
        while not opcodes or opcodes[-1] == 0x1:
            opcode, payload = await asyncio.wait_for(next_frame(stalled), WAIT)
            opcodes.append(opcode)
        assert opcode == 0x8
        assert struct.unpack("!H", payload[:2])[0] == WSCloseCode.TRY_AGAIN_LATER
        assert 1 < len(opcodes) < sent

        # Bob's socket is as live as ever.
        app[BUS].publish(sentinel(0))
        assert await until_sentinel(bob_ws, 0) == []


@pytest.mark.both_databases
async def test_joining_a_queue_counts_from_its_very_next_event(
    app: web.Application, make_user: UserFactory
) -> None:
    ann, bob = await make_user(Role.OPERATOR), await make_user(Role.OPERATOR)
    sales = await new_queue(app, "Sales", [bob])
    async with ann.client.ws_connect("/ws") as ws:
        assert (await asyncio.wait_for(ws.receive_json(), WAIT))["type"] == "hello"
        app[BUS].publish(conversation_created(201, sales))
        app[BUS].publish(sentinel(1))
        assert conversations_in(await until_sentinel(ws, 1)) == []

        # Ann joins Sales and a conversation arrives there, in one transaction: its event
        # comes right behind queue.updated, before her membership can have been read again.
        async with app[SESSIONS]() as session, session.begin():
            await set_members(session, CLI, sales, [bob.operator.id, ann.operator.id])
            await emit(session, conversation_created(202, sales))
        app[BUS].publish(sentinel(2))
        assert conversations_in(await until_sentinel(ws, 2)) == [202]

        # And leaves it: the next one does not reach her.
        async with app[SESSIONS]() as session, session.begin():
            await set_members(session, CLI, sales, [bob.operator.id])
            await emit(session, conversation_created(203, sales))
        app[BUS].publish(sentinel(3))
        assert conversations_in(await until_sentinel(ws, 3)) == []
