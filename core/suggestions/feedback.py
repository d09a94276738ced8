"""What operators do with suggestions, and how that weighs a suggestion's rank.

Per conversation, each suggestion shown is recorded (`shown`), then `inserted` when an
operator put it into the reply box, and when the reply goes out it is `sent` (most of the
suggested text kept) or `edited` (rewritten: less than `KEPT` of it survives, by difflib's
ratio with the placeholders' values left out; a reply carrying a public article's link sent
that article), and every other suggestion shown since the previous reply is `ignored` (not an
article whose link the reply carries). An insertion counts once per suggestion and reply, however
often the operator clicks. The counters on `SuggestionDoc` follow the events, and `weight`
turns them into a factor on the engine's score, so answers the team keeps sending rise and
answers it keeps passing over sink, within bounds (a new answer is neither buried nor
promoted).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.clock import utcnow
from core.errors import NotFound
from core.knowledge_rules import links_to
from core.models import (
    Direction,
    Interaction,
    InteractionKind,
    KnowledgeArticle,
    SuggestionDoc,
    SuggestionEvent,
    SuggestionKind,
    SuggestionOutcome,
)
from core.suggestions.text import without_placeholders
from core.visibility import suggestion_filter

# The share of a suggestion a sent reply must keep to count as sent rather than edited.
KEPT = 0.6
# The factor `weight` gives stays within these bounds.
MIN_WEIGHT = 0.5
MAX_WEIGHT = 1.6
_RESOLVED = (SuggestionOutcome.SENT, SuggestionOutcome.EDITED, SuggestionOutcome.IGNORED)


def weight(doc: SuggestionDoc) -> float:
    """How the team's use of an answer scales its score: sent ones up, ignored and rewritten
    ones down; 1.0 for an answer never shown."""
    good = doc.sent_count + 0.5 * doc.inserted_count
    bad = doc.edited_count + 0.25 * doc.ignored_count
    return max(MIN_WEIGHT, min(MAX_WEIGHT, (2.0 + good) / (2.0 + bad)))


def kept(suggested: str, sent: str) -> float:
    """How much of the suggested text the sent reply kept, 0..1."""
    a = " ".join(without_placeholders(suggested).split())
    b = " ".join(without_placeholders(sent).split())
    if not a:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


async def replies_since(session: AsyncSession, since: datetime) -> int:
    """Operators' replies sent since `since` (what the share of suggested ones is of)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(
            Interaction.direction == Direction.OUT,
            Interaction.kind == InteractionKind.MESSAGE,
            Interaction.operator_id.is_not(None),
            Interaction.occurred_at >= since,
        )
    )
    return int(count or 0)


async def record_shown(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    doc_ids: Sequence[int],
    engine: str,
) -> None:
    now = utcnow()
    for rank, doc_id in enumerate(doc_ids, start=1):
        session.add(
            SuggestionEvent(
                doc_id=doc_id,
                conversation_id=conversation_id,
                operator_id=actor.operator_id,
                outcome=SuggestionOutcome.SHOWN,
                engine=engine,
                rank=rank,
                created_at=now,
            )
        )
    await session.flush()


async def _visible_doc(session: AsyncSession, actor: Actor, doc_id: int) -> SuggestionDoc:
    doc = await session.scalar(
        select(SuggestionDoc).where(SuggestionDoc.id == doc_id, suggestion_filter(actor))
    )
    if doc is None:
        raise NotFound("no such suggestion")
    return doc


async def record_inserted(
    session: AsyncSession, actor: Actor, conversation_id: int, doc_id: int
) -> None:
    """The operator put the suggestion into the reply box (the conversation is checked by
    the caller): once per reply, however often they put it there."""
    doc = await _visible_doc(session, actor, doc_id)
    since = await _round_start(session, conversation_id)
    again = select(SuggestionEvent.id).where(
        SuggestionEvent.conversation_id == conversation_id,
        SuggestionEvent.doc_id == doc.id,
        SuggestionEvent.outcome == SuggestionOutcome.INSERTED,
    )
    if since is not None:
        again = again.where(SuggestionEvent.id > since)
    if await session.scalar(again.limit(1)) is not None:
        return
    session.add(
        SuggestionEvent(
            doc_id=doc.id,
            conversation_id=conversation_id,
            operator_id=actor.operator_id,
            outcome=SuggestionOutcome.INSERTED,
        )
    )
    await session.execute(
        update(SuggestionDoc)
        .where(SuggestionDoc.id == doc.id)
        .values(inserted_count=SuggestionDoc.inserted_count + 1)
    )


async def record_reply(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    *,
    text: str,
    suggestion_id: int | None,
) -> SuggestionOutcome | None:
    """A reply went out: the suggestion it came from (if any) was sent or edited; the other
    suggestions shown since the previous reply were ignored. The outcome for
    `suggestion_id`."""
    since = await _round_start(session, conversation_id)
    outcome: SuggestionOutcome | None = None
    if suggestion_id is not None:
        doc = await _visible_doc(session, actor, suggestion_id)
        # An article sent as its link is the article as suggested.
        linked = await _linked_articles(session, [doc.id], text)
        share = 1.0 if linked else kept(doc.answer, text)
        outcome = SuggestionOutcome.SENT if share >= KEPT else SuggestionOutcome.EDITED
        session.add(
            SuggestionEvent(
                doc_id=doc.id,
                conversation_id=conversation_id,
                operator_id=actor.operator_id,
                outcome=outcome,
                similarity=round(share, 3),
            )
        )
        counter = (
            SuggestionDoc.sent_count
            if outcome is SuggestionOutcome.SENT
            else SuggestionDoc.edited_count
        )
        await session.execute(
            update(SuggestionDoc)
            .where(SuggestionDoc.id == doc.id)
            .values({counter.key: counter + 1})
        )
    await _ignore_shown(session, actor, conversation_id, since, suggestion_id, text)
    await session.flush()
    return outcome


async def _round_start(session: AsyncSession, conversation_id: int) -> int | None:
    """The last event of the previous round of suggestions in the conversation: the previous
    reply's outcomes end it (None: the first round)."""
    return await session.scalar(
        select(func.max(SuggestionEvent.id)).where(
            SuggestionEvent.conversation_id == conversation_id,
            SuggestionEvent.outcome.in_(_RESOLVED),
        )
    )


async def _linked_articles(session: AsyncSession, doc_ids: Iterable[int], text: str) -> set[int]:
    """The documents among `doc_ids` that are articles whose public link `text` carries."""
    ids = list(doc_ids)
    if not ids or "/help/" not in text:
        return set()
    rows = await session.execute(
        select(SuggestionDoc.id, KnowledgeArticle.slug)
        .join(KnowledgeArticle, KnowledgeArticle.id == SuggestionDoc.source_id)
        .where(SuggestionDoc.id.in_(ids), SuggestionDoc.kind == SuggestionKind.ARTICLE)
    )
    return {doc_id for doc_id, slug in rows if links_to(text, slug)}


async def _ignore_shown(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    since: int | None,
    chosen: int | None,
    text: str,
) -> None:
    query = select(SuggestionEvent.doc_id).where(
        SuggestionEvent.conversation_id == conversation_id,
        SuggestionEvent.outcome == SuggestionOutcome.SHOWN,
        SuggestionEvent.doc_id.is_not(None),
    )
    if since is not None:
        query = query.where(SuggestionEvent.id > since)
    shown = {doc_id for doc_id in await session.scalars(query.distinct()) if doc_id is not None}
    if chosen is not None:
        shown.discard(chosen)
    # An article whose link went out was used, if not as the reply's suggestion.
    shown -= await _linked_articles(session, shown, text)
    for doc_id in sorted(shown):
        session.add(
            SuggestionEvent(
                doc_id=doc_id,
                conversation_id=conversation_id,
                operator_id=actor.operator_id,
                outcome=SuggestionOutcome.IGNORED,
            )
        )
    if shown:
        await session.execute(
            update(SuggestionDoc)
            .where(SuggestionDoc.id.in_(shown))
            .values(ignored_count=SuggestionDoc.ignored_count + 1)
        )
