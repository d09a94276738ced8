"""The ceiling for bench/twilio_ingest.py: a bare aiohttp handler that checks Twilio's signature.

It does what any Twilio webhook endpoint must do (read the form, validate `X-Twilio-Signature`
with the official RequestValidator over the public address, answer empty TwiML) and nothing
omnicrm does (parsing, identity, storage, the commit before the answer).

    python bench/twilio_bare_server.py PORT PUBLIC_URL AUTH_TOKEN
"""

from __future__ import annotations

import sys

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def make_app(public_url: str, auth_token: str) -> web.Application:
    validator = RequestValidator(auth_token)

    async def message(request: web.Request) -> web.Response:
        form = await request.post()
        params = MultiDict((key, str(value)) for key, value in form.items())
        url = f"{public_url}{request.rel_url}"
        if not validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
            return web.json_response({"error": "forbidden"}, status=403)
        return web.Response(body=TWIML, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/hooks/twilio/{account}/message", message)
    return app


def main() -> None:
    port, public_url, auth_token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    app = make_app(public_url, auth_token)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
