"""Suggested replies for a conversation: the question, the engine, the caller's visibility,
the ranking, the placeholders.

`SuggestionService.suggest` (one per process, `web.keys.SUGGESTIONS`):
1. The question is what the customer wrote since the team's last reply in this conversation
   (or, if the team spoke last, the customer's last message); its language is detected, else
   the contact's.
2. The chosen engine (`engine_name`: the configured one if installed, else the lexical one;
   the lexical one also for a question in a language the chosen one does not read) finds up
   to `CANDIDATES` documents among those the caller may be offered
   (`core.visibility.suggestion_filter`): never a reply of this very conversation.
3. Each hit's score, relative to the best, is scaled by the team's use of it
   (`feedback.weight`) and favours the conversation's queue and the question's language; the
   same answer given many times counts once (`answer_key`); the best `limit` remain.
4. Placeholders are filled for this conversation like a canned response's
   (`core.canned.placeholder_values`, the status link); the ERP's (`{{order.number}}`...) are
   left for the console, which fills them from the ERP bridge as it does for canned ones.

Each suggestion says where it came from (the conversation, canned response or article) and
why: the question's words found in it and its score. A public article's link is to its
translation in the customer's language when there is a public one (else the matched
article's own language), as the public page picks (`core.knowledge.best_translation`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.canned import StatusLinkMaker, fill, placeholder_values
from core.conversations import get_conversation
from core.knowledge import best_translation, public_translations
from core.language import detect
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    KnowledgeArticle,
    SuggestionDoc,
    SuggestionKind,
)
from core.suggestions.base import Hit, Question, SuggestionEngine
from core.suggestions.feedback import record_shown, weight
from core.suggestions.index import QUESTION_KINDS, said
from core.suggestions.text import is_unspaced, query_terms, terms
from core.visibility import suggestion_filter

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 3
MAX_LIMIT = 10
# Hits asked of the engine before ranking and removing repeats (the same answer given in
# many conversations fills many of them).
CANDIDATES = 100
# The recent interactions read to find the question.
RECENT = 30
SAME_QUEUE = 1.1
SAME_LANGUAGE = 1.15


@dataclass(frozen=True)
class Suggestion:
    doc_id: int
    kind: str
    title: str
    text: str
    score: float
    terms: list[str]
    conversation_id: int | None = None
    canned_id: int | None = None
    article_id: int | None = None
    # A public article's slug and the language to link it in (the caller makes its public
    # link): the customer's translation when one is public, else the article's own.
    article_slug: str | None = None
    article_language: str | None = None


@dataclass(frozen=True)
class Suggestions:
    engine: str
    question: str
    language: str | None
    items: list[Suggestion] = field(default_factory=list)


def telling(word: str) -> bool:
    """Whether a matched word is worth showing as a reason ("order", "10330", "订"), not a
    short word every question has ("is", "my")."""
    return len(word) >= 3 or word.isdigit() or is_unspaced(word)


def pending_question(interactions: list[Interaction]) -> str:
    """What the customer wrote since the team's last message (`interactions` newest first);
    when the team spoke last, what the customer wrote before that."""
    asked: list[str] = []
    for item in interactions:
        if item.direction == Direction.IN and item.kind in QUESTION_KINDS:
            if text := said(item):
                asked.append(text)
        elif item.direction == Direction.OUT and item.kind == InteractionKind.MESSAGE and asked:
            break
    return "\n".join(reversed(asked))


class SuggestionService:
    """The process's engines by name and the configured one."""

    def __init__(self, engines: Mapping[str, SuggestionEngine], configured: str) -> None:
        if "lexical" not in engines:
            raise ValueError("the lexical engine is always there")
        self.engines = dict(engines)
        self.configured = configured

    @property
    def engine_name(self) -> str:
        """The configured engine if this process has it, else the lexical one."""
        return self.configured if self.configured in self.engines else "lexical"

    async def suggest(
        self,
        session: AsyncSession,
        actor: Actor,
        conversation_id: int,
        *,
        limit: int = DEFAULT_LIMIT,
        status_link: StatusLinkMaker | None = None,
        record: bool = True,
    ) -> Suggestions:
        conversation = await get_conversation(session, actor, conversation_id)
        recent = list(
            await session.scalars(
                select(Interaction)
                .where(Interaction.conversation_id == conversation.id)
                .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
                .limit(RECENT)
            )
        )
        question = pending_question(recent)
        contact_language = await session.scalar(
            select(Contact.language).where(Contact.id == conversation.contact_id)
        )
        language = detect(question) or contact_language
        name = self.engine_name
        if not self.engines[name].reads(language):
            name = "lexical"
        result = Suggestions(engine=name, question=question, language=language)
        if not question:
            return result
        allowed = suggestion_filter(actor) & (
            SuggestionDoc.conversation_id.is_(None)
            | (SuggestionDoc.conversation_id != conversation.id)
        )
        hits = await self.engines[name].search(
            session, Question(question, language), allowed=allowed, limit=CANDIDATES
        )
        ranked = await self._rank(session, hits, conversation, language)
        chosen = ranked[: max(1, min(limit, MAX_LIMIT))]
        if not chosen:
            return result
        values = await placeholder_values(session, actor, conversation)
        if status_link is not None and any("status.link" in doc.answer for doc, _ in chosen):
            values["status.link"] = await status_link(session, conversation)
        asked = query_terms(question, language)
        articles = await self._articles(session, [doc for doc, _ in chosen])
        for doc, score in chosen:
            found = set(terms(f"{doc.question}\n{doc.answer}", doc.language))
            article = articles.get(doc.source_id) if doc.kind == SuggestionKind.ARTICLE else None
            public = article is not None and doc.shareable
            link_language = None
            if public and article is not None:
                link_language = await self._link_language(
                    session, article, [contact_language, language]
                )
            result.items.append(
                Suggestion(
                    doc_id=doc.id,
                    kind=doc.kind,
                    title=doc.title,
                    text=fill(doc.answer, values),
                    score=round(score, 3),
                    terms=[word for stem, word in asked.items() if stem in found and telling(word)],
                    conversation_id=doc.conversation_id,
                    canned_id=doc.source_id if doc.kind == SuggestionKind.CANNED else None,
                    article_id=doc.source_id if doc.kind == SuggestionKind.ARTICLE else None,
                    article_slug=article.slug if public and article is not None else None,
                    article_language=link_language,
                )
            )
        # Shown to answer someone: not when reading a resolved conversation back.
        if record and conversation.status != ConversationStatus.RESOLVED:
            await record_shown(
                session, actor, conversation.id, [item.doc_id for item in result.items], name
            )
        return result

    async def _rank(
        self,
        session: AsyncSession,
        hits: list[Hit],
        conversation: Conversation,
        language: str | None,
    ) -> list[tuple[SuggestionDoc, float]]:
        if not hits:
            return []
        docs = {
            doc.id: doc
            for doc in await session.scalars(
                select(SuggestionDoc).where(SuggestionDoc.id.in_([hit.doc_id for hit in hits]))
            )
        }
        best = max(hit.score for hit in hits)
        lowest = min(hit.score for hit in hits)
        span = best - lowest
        scored: list[tuple[SuggestionDoc, float]] = []
        for hit in hits:
            doc = docs.get(hit.doc_id)
            if doc is None:
                continue
            # Relative to this search's hits: the best is 1, the last of them 0.5.
            relative = 1.0 if span <= 0 else 0.5 + 0.5 * (hit.score - lowest) / span
            score = relative * weight(doc)
            if conversation.queue_id is not None and doc.queue_id == conversation.queue_id:
                score *= SAME_QUEUE
            if language and doc.language == language:
                score *= SAME_LANGUAGE
            scored.append((doc, score))
        scored.sort(key=lambda pair: -pair[1])
        seen: set[str] = set()
        unique: list[tuple[SuggestionDoc, float]] = []
        for doc, score in scored:
            if doc.answer_key in seen:
                continue
            seen.add(doc.answer_key)
            unique.append((doc, score))
        return unique

    async def _link_language(
        self, session: AsyncSession, article: KnowledgeArticle, readers: list[str | None]
    ) -> str:
        """The language of the public translation of `article` for a customer who reads
        `readers` (the contact's language, the question's): theirs if there is one, else the
        article's own."""
        wanted = [item for item in readers if item] + [article.language]
        found = best_translation(await public_translations(session, article.slug), wanted)
        return found.language if found is not None else article.language

    async def _articles(
        self, session: AsyncSession, docs: list[SuggestionDoc]
    ) -> dict[int, KnowledgeArticle]:
        ids = [doc.source_id for doc in docs if doc.kind == SuggestionKind.ARTICLE]
        if not ids:
            return {}
        rows = await session.scalars(select(KnowledgeArticle).where(KnowledgeArticle.id.in_(ids)))
        return {article.id: article for article in rows}
