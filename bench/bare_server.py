"""The ceiling for bench/ingest.py: a bare aiohttp handler that parses a form and answers.

It does what any aiohttp form endpoint must do (read and parse the body, answer with a
redirect) and nothing omnicrm does (validation, identity, storage).
"""

from __future__ import annotations

import sys

from aiohttp import web


async def accept_form(request: web.Request) -> web.Response:
    fields = await request.post()
    if "email" not in fields:
        return web.json_response({"error": "email missing"}, status=400)
    raise web.HTTPSeeOther("/thanks")


def main() -> None:
    app = web.Application()
    app.router.add_post("/forms/{slug}", accept_form)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
