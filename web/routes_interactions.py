"""The API channel: other systems post inbound interactions."""

from __future__ import annotations

from aiohttp import web

from channels.api import InteractionIn, to_event
from core.errors import InvalidInput, NotFound
from core.ingest import ingest
from core.models import Role
from core.queues import queue_by_name
from web.api import ApiRoutes, Call, NoBody, json_response
from web.keys import INGEST_POLICY
from web.schemas import ReceivedOut

routes = ApiRoutes(tag="interactions")

# Integration tokens are made for this; admins may post too (e.g. to try it out).
API_CHANNEL_ROLES = frozenset({Role.INTEGRATION, Role.ADMIN})


@routes.post(
    "/api/v1/interactions",
    summary="Ingest an inbound interaction; 201 when stored, 200 for a repeated external_id",
    roles=API_CHANNEL_ROLES,
    body=InteractionIn,
    response=ReceivedOut,
    status=201,
)
async def create_interaction(call: Call[InteractionIn, NoBody]) -> web.StreamResponse:
    policy = call.request.app[INGEST_POLICY]
    async with call.sessions() as session, session.begin():
        queue_id = None
        if call.body.queue is not None:
            try:
                queue_id = (await queue_by_name(session, call.body.queue)).id
            except NotFound as exc:
                raise InvalidInput(exc.message, field="queue") from None
        event = to_event(call.body, queue_id=queue_id, default_region=policy.default_region)
        result = await ingest(session, event, policy)
    received = ReceivedOut(
        interaction_id=result.interaction_id,
        conversation_id=result.conversation_id,
        contact_id=result.contact_id,
    )
    return json_response(received, status=201 if result.created else 200)
