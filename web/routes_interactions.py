"""The API channel's HTTP side: other systems post inbound interactions.

The route authenticates and validates the body; the API channel (`channels/api.py`, found in
the application's registry) resolves the queue and ingests.
"""

from __future__ import annotations

from aiohttp import web

from channels.api import CHANNEL, ApiChannel, InteractionIn
from core.errors import NotFound
from core.models import Role
from web.api import ApiRoutes, Call, NoBody, json_response
from web.keys import INGEST_POLICY, REGISTRY
from web.schemas import ReceivedOut

routes = ApiRoutes(tag="interactions")

# Integration tokens are made for this; admins may post too (e.g. to try it out).
API_CHANNEL_ROLES = frozenset({Role.INTEGRATION, Role.ADMIN})


def api_channel(request: web.Request) -> ApiChannel:
    """The API channel this application runs; 404 when it runs without one."""
    channel = request.app[REGISTRY].get(CHANNEL)
    if not isinstance(channel, ApiChannel):
        raise NotFound("the API channel is not enabled on this server")
    return channel


@routes.post(
    "/api/v1/interactions",
    summary="Ingest an inbound interaction; 201 when stored, 200 for a repeated external_id",
    roles=API_CHANNEL_ROLES,
    body=InteractionIn,
    response=ReceivedOut,
    status=201,
)
async def create_interaction(call: Call[InteractionIn, NoBody]) -> web.StreamResponse:
    channel = api_channel(call.request)
    async with call.sessions() as session, session.begin():
        result = await channel.receive(session, call.body, policy=call.request.app[INGEST_POLICY])
    received = ReceivedOut(
        interaction_id=result.interaction_id,
        conversation_id=result.conversation_id,
        contact_id=result.contact_id,
    )
    return json_response(received, status=201 if result.created else 200)
