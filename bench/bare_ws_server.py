"""The ceiling for bench/websockets.py: a bare aiohttp server that broadcasts to its websockets.

It does what any aiohttp server that pushes one small JSON message to every open websocket
must do, and nothing omnicrm does (sessions, the bus, a task and a visibility check per
socket, presence records): `GET /ws` opens a websocket as omnicrm's `/ws` does (the same
`WebSocketResponse(heartbeat=30)`, so permessage-deflate is negotiated when the client offers
it, as browsers and aiohttp's client do), greets it with a `hello` and reads what the client
sends; `POST /broadcast/{seq}` answers at once and then sends `{"type": "bench", "ids":
{"seq": seq}}` to every socket, encoded once, from one task, as omnicrm publishes after commit
and answers without waiting for the consoles. `POST /ping` answers when the server is up.

    python bench/bare_ws_server.py PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import weakref

from aiohttp import WSMsgType, web

SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")
# The broadcasts in flight, kept so they are not collected before they finish.
SENDING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("sending")


async def open_socket(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    await socket.send_str(json.dumps({"type": "hello", "ids": {}, "labels": {}}))
    request.app[SOCKETS].add(socket)
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
    return socket


async def broadcast(request: web.Request) -> web.Response:
    seq = int(request.match_info["seq"])
    text = json.dumps({"type": "bench", "ids": {"seq": seq}, "labels": {}})
    sockets = request.app[SOCKETS]
    task = asyncio.create_task(_send_all(list(sockets), text))
    request.app[SENDING].add(task)
    task.add_done_callback(request.app[SENDING].discard)
    return web.Response(status=204)


async def _send_all(sockets: list[web.WebSocketResponse], text: str) -> None:
    for socket in sockets:
        if not socket.closed:
            # A client that went away misses it, as a console would.
            with contextlib.suppress(ConnectionError):
                await socket.send_str(text)


async def ping(_request: web.Request) -> web.Response:
    return web.Response(status=204)


def make_app() -> web.Application:
    app = web.Application()
    app[SOCKETS] = weakref.WeakSet()
    app[SENDING] = set()
    app.router.add_get("/ws", open_socket)
    app.router.add_post("/broadcast/{seq}", broadcast)
    app.router.add_post("/ping", ping)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
