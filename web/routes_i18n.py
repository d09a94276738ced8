"""The catalogues for the browser: /i18n/<locale>.json (see web/static/common/i18n.js)."""

from __future__ import annotations

import functools
import hashlib
import json

from aiohttp import web

from core.errors import NotFound
from core.i18n import client_catalogue
from core.preferences import LOCALES
from web.api import PUBLIC, ApiRoutes, Call, NoBody

routes = ApiRoutes(tag="pages")


@functools.cache
def _document(locale: str) -> tuple[bytes, str]:
    body = json.dumps(client_catalogue(locale), ensure_ascii=False, sort_keys=True).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@routes.get(
    "/i18n/{locale}.json",
    summary="A language's messages for the pages: {locale, plural_index, messages}",
    roles=PUBLIC,
)
async def catalogue(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    locale = call.request.match_info["locale"]
    if locale not in LOCALES:
        raise NotFound(f"no such language; there are {', '.join(LOCALES)}")
    body, etag = _document(locale)
    # Revalidated on every load (cheap 304s), like the static files: a new version shows at once.
    headers = {"Cache-Control": "no-cache", "ETag": etag}
    if call.request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=body, content_type="application/json", charset="utf-8", headers=headers
    )
