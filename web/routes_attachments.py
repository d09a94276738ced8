"""Attachment downloads, for operators allowed to see the conversation."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from core import conversations
from web.api import ApiRoutes, Call, NoBody
from web.keys import ATTACHMENTS

routes = ApiRoutes(tag="attachments")


@routes.get(
    "/api/v1/interactions/{id}/attachments/{index}",
    summary="Download an attachment (always as a file, never rendered in the page)",
)
async def download(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        entry = await conversations.get_attachment(
            session, call.actor, call.path_int("id"), call.path_int("index")
        )
    data = await call.request.app[ATTACHMENTS].get(str(entry["key"]))
    filename = str(entry.get("filename") or "attachment")
    return web.Response(
        body=data,
        content_type=str(entry.get("content_type") or "application/octet-stream"),
        headers={
            # A customer's file must never run as a page of ours: download it, sandboxed.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )
