"""The suggestion index: which answers exist to suggest (`SuggestionDoc`), kept in step with
their sources, and written into the lexical engine's full-text rows in the same transaction.

Sources:
- **Replies of resolved conversations** (`index_conversation`, called when a conversation is
  resolved: `core.conversations.mark_resolved`): each message an operator sent is paired with
  what the customer had written since the previous reply (`reply_pairs`). Automatic replies
  (no operator) and internal notes are not answers. Before it is stored, a reply is made
  general (`generalize`): the customer's and the operator's names, the customer's addresses,
  and numbers the customer wrote (their order, their ticket) become placeholders, so a
  suggestion never carries another customer's details and fills in the current one's.
  Reindexing a conversation keeps each reply's counters and curation flags; a reply an
  operator marked (`meta.suggestion.shareable` / `.excluded`, see `set_curation`) keeps the
  mark.
- **Shared and own canned responses** (`index_canned`, from `core.canned`) and **knowledge
  articles** (`index_article`, from `core.knowledge`; an archived one is removed).

The semantic engine's vectors are not made here (a model is slow): a changed document loses
its vector, and `core.suggestions.semantic` embeds what has none in the background.
`rebuild` redoes everything from the sources (the CLI's `omnicrm suggestions rebuild`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory
from core.language import detect
from core.models import (
    ArticleVisibility,
    CannedResponse,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Identity,
    Interaction,
    InteractionKind,
    KnowledgeArticle,
    Operator,
    SuggestionDoc,
    SuggestionKind,
)
from core.suggestions.lexical import LexicalEngine
from core.suggestions.text import answer_key

MAX_QUESTION_CHARS = 2000
MAX_ANSWER_CHARS = 20_000
# What the customer writes that counts as asking.
QUESTION_KINDS = frozenset({InteractionKind.MESSAGE, InteractionKind.FORM})
# A word with this many digits that the customer wrote (an order, a ticket, a parcel) is
# theirs: in the answer it becomes {{order.number}}.
_THEIR_NUMBER = re.compile(r"[^\W_]*\d{4,}[^\W_]*(?:-[^\W_]*\d[^\W_]*)*")
REBUILD_BATCH = 200

Progress = Callable[[int, int], None]


def said(item: Interaction) -> str:
    """What the customer wrote in an interaction: its subject and text."""
    return "\n".join(part for part in (item.subject, item.text) if part).strip()


def reply_pairs(interactions: Sequence[Interaction]) -> list[tuple[str, Interaction]]:
    """(question, reply) in the order they happened: each operator's message with the text
    the customer had sent since the previous one. A reply nobody asked for (the first
    message of an outbound conversation) is no answer."""
    pairs: list[tuple[str, Interaction]] = []
    asked: list[str] = []
    for item in interactions:
        if item.direction == Direction.IN and item.kind in QUESTION_KINDS:
            if text := said(item):
                asked.append(text)
        elif (
            item.direction == Direction.OUT
            and item.kind == InteractionKind.MESSAGE
            and item.operator_id is not None
            and item.text.strip()
        ):
            if asked:
                pairs.append(("\n".join(asked)[:MAX_QUESTION_CHARS], item))
            asked = []
    return pairs


def generalize(answer: str, question: str, known: dict[str, str]) -> str:
    """The reply with the people's particulars as placeholders: every value of `known`
    (a name, an address) by its placeholder, longest first; numbers the customer wrote by
    {{order.number}}."""
    text = answer
    for value, placeholder in sorted(known.items(), key=lambda item: -len(item[0])):
        if len(value) >= 2:
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", placeholder, text)
    theirs = {match.group(0) for match in _THEIR_NUMBER.finditer(question)}
    for number in sorted(theirs, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(number)}(?!\w)", "{{order.number}}", text)
    return text


async def _particulars(session: AsyncSession, conversation: Conversation) -> dict[str, str]:
    known: dict[str, str] = {}
    contact = await session.get(Contact, conversation.contact_id)
    if contact is not None and contact.display_name.strip():
        name = contact.display_name.strip()
        first, _, last = name.partition(" ")
        known[first] = "{{contact.first_name}}"
        if last.strip():
            known[last.strip()] = "{{contact.last_name}}"
        known[name] = "{{contact.name}}"
    addresses = await session.execute(
        select(Identity.kind, Identity.address).where(
            Identity.contact_id == conversation.contact_id
        )
    )
    for kind, address in addresses:
        known[address] = "{{contact.email}}" if kind == "email" else "{{contact.phone}}"
    return known


async def _operator_names(session: AsyncSession, ids: set[int]) -> dict[str, str]:
    known: dict[str, str] = {}
    if not ids:
        return known
    for name in await session.scalars(select(Operator.name).where(Operator.id.in_(ids))):
        name = name.strip()
        if name:
            known[name.partition(" ")[0]] = "{{operator.first_name}}"
            known[name] = "{{operator.name}}"
    return known


def _curation(reply: Interaction) -> dict[str, Any]:
    marks = (reply.meta or {}).get("suggestion")
    return marks if isinstance(marks, dict) else {}


async def index_conversation(session: AsyncSession, conversation_id: int) -> int:
    """Makes a resolved conversation's replies suggestable, as they are now; the number of
    its replies indexed. A conversation that is not resolved is left as it is (reopened, its
    earlier answers stay good answers)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.status != ConversationStatus.RESOLVED:
        return 0
    existing = {
        doc.source_id: doc
        for doc in await session.scalars(
            select(SuggestionDoc).where(
                SuggestionDoc.kind == SuggestionKind.REPLY,
                SuggestionDoc.conversation_id == conversation_id,
            )
        )
    }
    interactions = await session.scalars(
        select(Interaction)
        .where(Interaction.conversation_id == conversation_id)
        .order_by(Interaction.occurred_at, Interaction.id)
    )
    pairs = reply_pairs(list(interactions))
    changed: list[SuggestionDoc] = []
    if pairs:
        known = await _particulars(session, conversation)
        contact_language = await session.scalar(
            select(Contact.language).where(Contact.id == conversation.contact_id)
        )
        operators = await _operator_names(
            session, {reply.operator_id for _, reply in pairs if reply.operator_id is not None}
        )
        for question, reply in pairs:
            answer = generalize(reply.text, question, {**operators, **known})[:MAX_ANSWER_CHARS]
            marks = _curation(reply)
            fields = {
                "question": question,
                "answer": answer,
                "answer_key": answer_key(answer),
                "queue_id": conversation.queue_id,
                "language": detect(question) or contact_language or "",
                "title": conversation.subject[:500],
                "shareable": bool(marks.get("shareable", False)),
                "excluded": bool(marks.get("excluded", False)),
            }
            doc = existing.pop(reply.id, None)
            if doc is None:
                doc = SuggestionDoc(
                    kind=SuggestionKind.REPLY,
                    source_id=reply.id,
                    conversation_id=conversation_id,
                    **fields,
                )
                session.add(doc)
                changed.append(doc)
            elif _update(doc, fields):
                changed.append(doc)
    for gone in existing.values():
        await session.delete(gone)
    await session.flush()
    await LexicalEngine().index(session, changed)
    return len(pairs)


def _update(doc: SuggestionDoc, fields: dict[str, Any]) -> bool:
    """Sets the fields that differ; whether the words changed (the index must follow)."""
    words_changed = any(
        getattr(doc, name) != fields[name] for name in ("question", "answer", "language")
    )
    for name, value in fields.items():
        if getattr(doc, name) != value:
            setattr(doc, name, value)
    if words_changed:
        doc.embedding = None
        doc.embedding_model = None
    return words_changed


async def _index_source(
    session: AsyncSession,
    kind: SuggestionKind,
    source_id: int,
    fields: dict[str, Any] | None,
) -> None:
    doc = await session.scalar(
        select(SuggestionDoc).where(
            SuggestionDoc.kind == kind, SuggestionDoc.source_id == source_id
        )
    )
    if fields is None:
        if doc is not None:
            await session.delete(doc)
            await session.flush()
        return
    fields = {**fields, "answer_key": answer_key(fields["answer"])}
    if doc is None:
        doc = SuggestionDoc(kind=kind, source_id=source_id, **fields)
        session.add(doc)
        await session.flush()
        await LexicalEngine().index(session, [doc])
    elif _update(doc, fields):
        await session.flush()
        await LexicalEngine().index(session, [doc])


async def index_canned(session: AsyncSession, canned: CannedResponse) -> None:
    """A canned response is suggested by its title and words, to everyone it is offered to
    (`core.visibility.suggestion_filter`: shared ones to all, own ones to their owner)."""
    await _index_source(
        session,
        SuggestionKind.CANNED,
        canned.id,
        {
            "title": canned.title[:500],
            "question": canned.title,
            "answer": canned.body[:MAX_ANSWER_CHARS],
            "owner_id": canned.owner_id,
            "language": detect(f"{canned.title}\n{canned.body}") or "",
        },
    )


async def forget_canned(session: AsyncSession, canned_id: int) -> None:
    await _index_source(session, SuggestionKind.CANNED, canned_id, None)


async def index_article(session: AsyncSession, article: KnowledgeArticle) -> None:
    """An article is suggested by its title and tags, with its body as the answer; an
    archived one is not suggested."""
    if article.archived_at is not None:
        await _index_source(session, SuggestionKind.ARTICLE, article.id, None)
        return
    await _index_source(
        session,
        SuggestionKind.ARTICLE,
        article.id,
        {
            "title": article.title[:500],
            "question": " ".join([article.title, *article.tags]),
            "answer": article.body[:MAX_ANSWER_CHARS],
            "language": article.language,
            "shareable": article.visibility == ArticleVisibility.PUBLIC,
        },
    )


async def set_curation(
    session: AsyncSession, reply: Interaction, *, shareable: bool | None, excluded: bool | None
) -> SuggestionDoc | None:
    """Marks a reply shareable (suggested to operators who cannot see its conversation) and/or
    excluded (never suggested). The mark lives on the reply, so it holds before its
    conversation is resolved and across reindexing; the reply's document, if any, follows."""
    marks = dict(_curation(reply))
    if shareable is not None:
        marks["shareable"] = shareable
    if excluded is not None:
        marks["excluded"] = excluded
    reply.meta = {**(reply.meta or {}), "suggestion": marks}
    doc = await session.scalar(
        select(SuggestionDoc).where(
            SuggestionDoc.kind == SuggestionKind.REPLY, SuggestionDoc.source_id == reply.id
        )
    )
    if doc is not None:
        doc.shareable = bool(marks.get("shareable", False))
        doc.excluded = bool(marks.get("excluded", False))
    await session.flush()
    return doc


async def forget_conversations(session: AsyncSession, conversation_ids: Sequence[int]) -> None:
    """Drops the replies of these conversations from the index (a privacy erasure)."""
    if conversation_ids:
        await session.execute(
            delete(SuggestionDoc).where(SuggestionDoc.conversation_id.in_(conversation_ids))
        )


async def rebuild(sessions: SessionFactory, progress: Progress | None = None) -> int:
    """Indexes every source afresh, a batch per transaction; the number of documents.
    `progress(done, total)` is told after each batch (total: conversations + canned +
    articles)."""
    async with sessions() as session:
        conversation_ids = list(
            await session.scalars(
                select(Conversation.id)
                .where(Conversation.status == ConversationStatus.RESOLVED)
                .order_by(Conversation.id)
            )
        )
        canned_ids = list(await session.scalars(select(CannedResponse.id)))
        article_ids = list(await session.scalars(select(KnowledgeArticle.id)))
    total = len(conversation_ids) + len(canned_ids) + len(article_ids)
    done = 0
    for start in range(0, len(conversation_ids), REBUILD_BATCH):
        batch = conversation_ids[start : start + REBUILD_BATCH]
        async with sessions() as session, session.begin():
            for conversation_id in batch:
                await index_conversation(session, conversation_id)
        done += len(batch)
        if progress is not None:
            progress(done, total)
    async with sessions() as session, session.begin():
        for canned in await session.scalars(select(CannedResponse)):
            await index_canned(session, canned)
        for article in await session.scalars(select(KnowledgeArticle)):
            await index_article(session, article)
    if progress is not None:
        progress(total, total)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(SuggestionDoc))
    return int(count or 0)
