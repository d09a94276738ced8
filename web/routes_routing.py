"""Routing API: offers to accept or reject, transfers, the decision log, and the rule sets."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import conversations, routing_log
from core.models import utcnow
from routing import manual, setup
from web.api import ADMINS, ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import ConversationOut, OfferOut, Page, RoutingDecisionOut

routes = ApiRoutes(tag="routing")

MAX_NOTE_CHARS = 100_000


class OffersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_id: RecordId | None = Field(
        None, description="supervisors: one operator's offers (default: everyone's)"
    )


class OffersOut(BaseModel):
    items: list[OfferOut]


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: RecordId | None = Field(None, description="to wait in this queue")
    operator_id: RecordId | None = Field(None, description="straight to this operator")
    note: str | None = Field(
        None, max_length=MAX_NOTE_CHARS, description="kept as an internal note"
    )


class RulesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: dict[str, Any] = Field(description="the rule set (docs/routing.md)")


class RulesOut(BaseModel):
    rules: dict[str, Any] | None


@routes.get(
    "/api/v1/offers",
    summary="Pending offers: your own; supervisors see everyone's",
    query=OffersQuery,
    response=OffersOut,
)
async def list_offers(call: Call[NoBody, OffersQuery]) -> OffersOut:
    async with call.sessions() as session:
        offers = await manual.list_offers(session, call.actor, call.query.operator_id)
    return OffersOut(items=[OfferOut.model_validate(offer) for offer in offers])


@routes.post(
    "/api/v1/offers/{id}/accept",
    summary="Accept an offer: the conversation is assigned to you",
    response=OfferOut,
    errors=(409,),
)
async def accept_offer(call: Call[NoBody, NoBody]) -> OfferOut:
    async with call.sessions() as session, session.begin():
        offer = await manual.accept_offer(session, call.actor, call.path_int("id"), utcnow())
    return OfferOut.model_validate(offer)


@routes.post(
    "/api/v1/offers/{id}/reject",
    summary="Reject an offer: the next candidate is offered the work",
    response=OfferOut,
    errors=(409,),
)
async def reject_offer(call: Call[NoBody, NoBody]) -> OfferOut:
    async with call.sessions() as session, session.begin():
        offer = await manual.reject_offer(session, call.actor, call.path_int("id"), utcnow())
    return OfferOut.model_validate(offer)


@routes.post(
    "/api/v1/conversations/{id}/transfer",
    summary="Transfer to a queue or an operator, with an optional internal note",
    body=TransferBody,
    response=ConversationOut,
    errors=(409,),
)
async def transfer(call: Call[TransferBody, NoBody]) -> ConversationOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        conversation = await manual.transfer(
            session,
            call.actor,
            call.path_int("id"),
            utcnow(),
            queue_id=body.queue_id,
            operator_id=body.operator_id,
            note=body.note,
        )
    return ConversationOut.model_validate(conversation)


@routes.get(
    "/api/v1/conversations/{id}/routing",
    summary="The conversation's routing decisions with their reasons, oldest first",
    query=PageQuery,
    response=Page[RoutingDecisionOut],
)
async def routing_history(call: Call[NoBody, PageQuery]) -> Page[RoutingDecisionOut]:
    async with call.sessions() as session:
        rows, next_cursor = await conversations.list_routing(
            session,
            call.actor,
            call.path_int("id"),
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
        actors = {row.id: routing_log.actor_ref(row.actor_label) for row in rows}
        names = await routing_log.operator_names(
            session, (ref.operator_id for ref in actors.values() if ref.operator_id is not None)
        )
    items = []
    for row in rows:
        ref = actors[row.id]
        name = names.get(ref.operator_id) if ref.operator_id is not None else ref.name
        items.append(
            RoutingDecisionOut.model_validate(row).model_copy(
                update={
                    "actor_kind": ref.kind,
                    "actor_operator_id": ref.operator_id,
                    "actor_name": name,
                }
            )
        )
    return Page[RoutingDecisionOut](items=items, next_cursor=next_cursor)


def _rule_routes(path: str, name: str, what: str) -> None:
    @routes.get(path, summary=f"The {what}", roles=ADMINS, response=RulesOut)
    async def get_rules(call: Call[NoBody, NoBody]) -> RulesOut:
        async with call.sessions() as session:
            return RulesOut(rules=await setup.get_rules(session, name))

    @routes.put(
        path, summary=f"Replace the {what}", roles=ADMINS, body=RulesBody, response=RulesOut
    )
    async def put_rules(call: Call[RulesBody, NoBody]) -> RulesOut:
        async with call.sessions() as session, session.begin():
            saved = await setup.set_rules(session, call.actor, name, call.body.rules)
        return RulesOut(rules=saved)

    @routes.delete(path, summary=f"Remove the {what}", roles=ADMINS, response=RulesOut)
    async def delete_rules(call: Call[NoBody, NoBody]) -> RulesOut:
        async with call.sessions() as session, session.begin():
            await setup.set_rules(session, call.actor, name, None)
        return RulesOut(rules=None)


_rule_routes("/api/v1/routing/queue-rules", setup.QUEUE_RULES, "rules matching work to queues")
_rule_routes("/api/v1/routing/lead-rules", setup.LEAD_RULES, "rules giving leads an owner")
