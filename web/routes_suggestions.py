"""Suggested replies (core/suggestions): for a conversation, what the operator is told and
what they did with it; supervisors curate which replies are suggested and see how much the
team uses them.

Who is offered which answer is `core.visibility.suggestion_filter` (through the service and
`core.suggestions.feedback`); a conversation the caller may not see is a 403, as elsewhere.
The reply itself reports the suggestion it came from (`suggestion_id` in
`POST /api/v1/conversations/{id}/reply`).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from core.conversations import get_conversation, get_interaction
from core.errors import InvalidInput
from core.knowledge import public_url
from core.models import (
    Direction,
    InteractionKind,
    KnowledgeArticle,
    SuggestionEvent,
    SuggestionOutcome,
    utcnow,
)
from core.suggestions import feedback
from core.suggestions import index as suggestion_index
from core.suggestions.service import DEFAULT_LIMIT, MAX_LIMIT, Suggestion
from web.api import SUPERVISORS, ApiRoutes, Call, NoBody
from web.keys import SUGGESTIONS
from web.routes_help import public_base
from web.routes_status import canned_link_maker

routes = ApiRoutes(tag="suggestions")


class SuggestionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class SourceOut(BaseModel):
    conversation_id: int | None = Field(description="the resolved conversation it was sent in")
    canned_id: int | None
    article_id: int | None


class SuggestionOut(BaseModel):
    id: int = Field(description="give it back as the reply's suggestion_id")
    kind: str = Field(description="reply, canned or article")
    title: str
    text: str = Field(
        description="filled for this conversation; the ERP's placeholders ({{order.number}}) "
        "are left for the console to fill"
    )
    score: float = Field(description="its rank's score: the engine's, relative, times use")
    terms: list[str] = Field(description="the customer's words found in it")
    source: SourceOut
    link: str | None = Field(description="a public article's page, to send as a link")


class SuggestionsOut(BaseModel):
    engine: str
    question: str = Field(description="what the customer asked, as the engine read it")
    language: str | None
    suggestions: list[SuggestionOut]


class CurationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shareable: bool | None = Field(
        None, description="suggested also to operators who cannot see its conversation"
    )
    excluded: bool | None = Field(None, description="never suggested")


class CurationOut(BaseModel):
    interaction_id: int
    shareable: bool
    excluded: bool
    indexed: bool = Field(description="whether it is in the index now (its conversation resolved)")


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(7, ge=1, le=90)


class StatsOut(BaseModel):
    days: int
    shown: int = Field(description="suggestions shown")
    inserted: int
    sent: int = Field(description="replies that kept most of a suggestion")
    edited: int = Field(description="replies that rewrote the suggestion they started from")
    ignored: int
    replies: int = Field(description="operators' replies in the period")
    used_share: float = Field(description="(sent + edited) / replies")


def _out(request_base: str, item: Suggestion) -> SuggestionOut:
    link = None
    if item.article_slug is not None and item.article_language is not None:
        link = public_url(
            request_base,
            KnowledgeArticle(slug=item.article_slug, language=item.article_language),
        )
    return SuggestionOut(
        id=item.doc_id,
        kind=item.kind,
        title=item.title,
        text=item.text,
        score=item.score,
        terms=item.terms,
        source=SourceOut(
            conversation_id=item.conversation_id,
            canned_id=item.canned_id,
            article_id=item.article_id,
        ),
        link=link,
    )


@routes.get(
    "/api/v1/conversations/{id}/suggestions",
    summary="Suggested replies for the customer's open question, best first, with where "
    "each came from and why",
    query=SuggestionQuery,
    response=SuggestionsOut,
)
async def suggestions(call: Call[NoBody, SuggestionQuery]) -> SuggestionsOut:
    conversation_id = call.path_int("id")
    service = call.request.app[SUGGESTIONS]
    async with call.sessions() as session, session.begin():
        found = await service.suggest(
            session,
            call.actor,
            conversation_id,
            limit=call.query.limit,
            status_link=canned_link_maker(call.request),
        )
    base = public_base(call.request)
    return SuggestionsOut(
        engine=found.engine,
        question=found.question,
        language=found.language,
        suggestions=[_out(base, item) for item in found.items],
    )


@routes.post(
    "/api/v1/conversations/{id}/suggestions/{suggestion}/inserted",
    summary="The operator put this suggestion into the reply box (it weighs its rank)",
    status=204,
)
async def inserted(call: Call[NoBody, NoBody]) -> None:
    conversation_id = call.path_int("id")
    async with call.sessions() as session, session.begin():
        await get_conversation(session, call.actor, conversation_id)
        await feedback.record_inserted(
            session, call.actor, conversation_id, call.path_int("suggestion")
        )


@routes.patch(
    "/api/v1/interactions/{id}/suggestion",
    summary="Whether an operator's reply is suggested: shareable beyond its conversation's "
    "audience, or excluded",
    body=CurationBody,
    response=CurationOut,
    roles=SUPERVISORS,
)
async def curate(call: Call[CurationBody, NoBody]) -> CurationOut:
    async with call.sessions() as session, session.begin():
        reply = await get_interaction(session, call.actor, call.path_int("id"))
        if (
            reply.direction != Direction.OUT
            or reply.kind != InteractionKind.MESSAGE
            or reply.operator_id is None
        ):
            raise InvalidInput("only an operator's reply can be suggested", field="id")
        doc = await suggestion_index.set_curation(
            session, reply, shareable=call.body.shareable, excluded=call.body.excluded
        )
        marks = reply.meta.get("suggestion", {})
    return CurationOut(
        interaction_id=reply.id,
        shareable=bool(marks.get("shareable", False)),
        excluded=bool(marks.get("excluded", False)),
        indexed=doc is not None,
    )


@routes.get(
    "/api/v1/suggestions/stats",
    summary="How often the team used suggestions over the last days (the monitor's figures)",
    query=StatsQuery,
    response=StatsOut,
    roles=SUPERVISORS,
)
async def stats(call: Call[NoBody, StatsQuery]) -> StatsOut:
    since = utcnow() - timedelta(days=call.query.days)
    async with call.sessions() as session:
        rows = await session.execute(
            select(SuggestionEvent.outcome, func.count())
            .where(SuggestionEvent.created_at >= since)
            .group_by(SuggestionEvent.outcome)
        )
        counts: dict[str, int] = {outcome: int(count) for outcome, count in rows}
        replies = await feedback.replies_since(session, since)
    sent = counts.get(SuggestionOutcome.SENT, 0)
    edited = counts.get(SuggestionOutcome.EDITED, 0)
    return StatsOut(
        days=call.query.days,
        shown=counts.get(SuggestionOutcome.SHOWN, 0),
        inserted=counts.get(SuggestionOutcome.INSERTED, 0),
        sent=sent,
        edited=edited,
        ignored=counts.get(SuggestionOutcome.IGNORED, 0),
        replies=replies,
        used_share=round((sent + edited) / replies, 3) if replies else 0.0,
    )
