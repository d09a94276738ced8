"""A message's HTML for the console's sandboxed iframe: sanitized, strict CSP, role-checked."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import (
    Direction,
    IdentityKind,
    Interaction,
    InteractionKind,
    Role,
)
from tests.conftest import UserFactory
from tests.test_conversations_api import json_of, queue_with

HOSTILE = """<html><head><script>alert('head')</script>
<meta http-equiv="refresh" content="0; url=https://tracker.example/refresh"></head>
<body onload="alert('onload')">
<p onclick="alert('click')">My order number is <b>1234</b>.</p>
<a href="javascript:alert('link')">click me</a>
<img src="https://tracker.example/pixel.gif" onerror="alert('img')">
<div style="background-image: url(https://tracker.example/div.png); color: red">styled</div>
<iframe src="https://tracker.example/frame"></iframe>
<form action="https://tracker.example/phish"><input name="password"></form>
</body></html>"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


async def message(sessions: SessionFactory, queue_id: int | None, html: str | None) -> int:
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<m1@example.com>",
                addresses=[Address(IdentityKind.EMAIL, "mallory@example.com")],
                subject="Please look at my order",
                text="My order number is 1234.",
                html=html,
                queue_id=queue_id,
            ),
        )
    return result.interaction_id


def assert_harmless(page: str) -> None:
    lowered = page.lower()
    for bad in ("<script", "onload", "onclick", "onerror", "javascript:", "<iframe", "<form"):
        assert bad not in lowered, bad
    assert ' src="https://' not in lowered
    assert "url(https://" not in lowered
    assert "http-equiv" not in lowered


async def test_the_html_is_a_sanitized_page_with_a_strict_policy(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", operator)
    interaction_id = await message(sessions, queue, HOSTILE)
    response = await operator.get(f"/api/v1/interactions/{interaction_id}/html")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Framed by the console (same origin), by nobody else.
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Set-Cookie" not in response.headers
    page = await response.text()
    assert page.startswith("<!doctype html>")
    assert "My order number is <b>1234</b>." in page
    assert 'data-omnicrm-src="https://tracker.example/pixel.gif"' in page
    assert_harmless(page)


async def test_stored_html_is_sanitized_again_on_the_way_out(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    """Defense in depth: HTML that reached the table some other way is still made safe."""
    supervisor = await make_user(Role.SUPERVISOR)
    interaction_id = await message(sessions, None, "<p>hello</p>")
    async with sessions() as session, session.begin():
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        interaction.html = HOSTILE
    response = await supervisor.get(f"/api/v1/interactions/{interaction_id}/html")
    assert response.status == 200
    page = await response.text()
    assert "My order number is <b>1234</b>." in page
    assert_harmless(page)


async def test_only_operators_who_see_the_conversation_get_it(
    make_user: UserFactory, sessions: SessionFactory, client: TestClient[Any, Any]
) -> None:
    member = await make_user(Role.OPERATOR)
    outsider = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", member)
    interaction_id = await message(sessions, queue, "<p>private</p>")
    path = f"/api/v1/interactions/{interaction_id}/html"
    denied = await json_of(await outsider.get(path), 403)
    assert denied["error"]["code"] == "forbidden"
    await json_of(await client.get(path), 401)
    assert (await member.get(path)).status == 200


async def test_interactions_outside_conversations_are_for_supervisors(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    supervisor = await make_user(Role.SUPERVISOR)
    interaction_id = await message(sessions, None, "<p>loose</p>")
    async with sessions() as session, session.begin():
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        interaction.conversation_id = None
    path = f"/api/v1/interactions/{interaction_id}/html"
    await json_of(await operator.get(path), 403)
    assert "loose" in await (await supervisor.get(path)).text()


@pytest.mark.parametrize("html", [None, ""])
async def test_a_message_without_html_is_404(
    make_user: UserFactory, sessions: SessionFactory, html: str | None
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    interaction_id = await message(sessions, None, html)
    missing = await json_of(
        await supervisor.get(f"/api/v1/interactions/{interaction_id}/html"), 404
    )
    assert "no HTML" in missing["error"]["message"]
    await json_of(await supervisor.get("/api/v1/interactions/999999/html"), 404)
    await json_of(await supervisor.get("/api/v1/interactions/abc/html"), 404)


async def test_notes_have_no_html(make_user: UserFactory, sessions: SessionFactory) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    interaction_id = await message(sessions, None, "<p>x</p>")
    async with sessions() as session, session.begin():
        interaction = await session.get(Interaction, interaction_id)
        assert interaction is not None
        note = Interaction(
            conversation_id=interaction.conversation_id,
            contact_id=interaction.contact_id,
            kind=InteractionKind.NOTE,
            direction=Direction.INTERNAL,
            channel="email",
            text="internal",
        )
        session.add(note)
        await session.flush()
        note_id = note.id
    await json_of(await supervisor.get(f"/api/v1/interactions/{note_id}/html"), 404)
