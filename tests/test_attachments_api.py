"""Attachments are downloadable only by operators who may see the conversation."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from core.audit import CLI
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role
from core.queues import set_members
from routing.setup import create_queue
from tests.conftest import UserFactory
from web.keys import ATTACHMENTS

INVOICE = b"%PDF-1.4 the invoice"


async def arrange(app: web.Application, sessions: SessionFactory) -> tuple[int, int]:
    """A conversation in queue Billing with one stored and one too-large attachment."""
    key = await app[ATTACHMENTS].put(INVOICE)
    async with sessions() as session, session.begin():
        billing = await create_queue(session, CLI, name="Billing")
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<att@customer.example>",
                addresses=[Address(IdentityKind.EMAIL, "payer@customer.example")],
                text="invoice attached",
                queue_id=billing.id,
                attachments=[
                    {
                        "key": key,
                        "filename": "Rechnung März.pdf",
                        "content_type": "application/pdf",
                        "size": len(INVOICE),
                    },
                    {"key": None, "filename": "huge.zip", "size": 10**9, "too_large": True},
                ],
            ),
        )
    return billing.id, result.interaction_id


async def test_an_operator_of_the_queue_downloads_it_as_a_file(
    app: web.Application, sessions: SessionFactory, make_user: UserFactory
) -> None:
    queue_id, interaction_id = await arrange(app, sessions)
    operator = await make_user(Role.OPERATOR)
    async with sessions() as session, session.begin():
        await set_members(session, CLI, queue_id, [operator.operator.id])
    response = await operator.get(f"/api/v1/interactions/{interaction_id}/attachments/0")
    assert response.status == 200
    assert await response.read() == INVOICE
    assert response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"
    )
    assert response.headers["Content-Security-Policy"] == "sandbox"


async def test_an_operator_of_another_queue_is_refused(
    app: web.Application, sessions: SessionFactory, make_user: UserFactory
) -> None:
    _, interaction_id = await arrange(app, sessions)
    outsider = await make_user(Role.OPERATOR)
    response = await outsider.get(f"/api/v1/interactions/{interaction_id}/attachments/0")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    supervisor = await make_user(Role.SUPERVISOR)
    allowed = await supervisor.get(f"/api/v1/interactions/{interaction_id}/attachments/0")
    assert allowed.status == 200


async def test_missing_and_too_large_attachments_are_404(
    app: web.Application, sessions: SessionFactory, make_user: UserFactory
) -> None:
    _, interaction_id = await arrange(app, sessions)
    supervisor = await make_user(Role.SUPERVISOR)
    too_large = await supervisor.get(f"/api/v1/interactions/{interaction_id}/attachments/1")
    assert too_large.status == 404
    assert "too large" in (await too_large.json())["error"]["message"]
    assert (
        await supervisor.get(f"/api/v1/interactions/{interaction_id}/attachments/2")
    ).status == 404
    assert (await supervisor.get("/api/v1/interactions/999999/attachments/0")).status == 404


async def test_anonymous_download_is_401(
    app: web.Application, sessions: SessionFactory, client: TestClient[Any, Any]
) -> None:
    _, interaction_id = await arrange(app, sessions)
    response = await client.get(f"/api/v1/interactions/{interaction_id}/attachments/0")
    assert response.status == 401
