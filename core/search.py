"""Full-text search with the database's own index: PostgreSQL's tsvector (GIN expression
indexes) or SQLite's FTS5 (tables kept in step by triggers), both made by migration 0012.

What is indexed: every interaction's subject and text (the first 100,000 characters on
PostgreSQL), every contact's name and the addresses of its identities (email, phone, ...).

A person's query never reaches the database as query syntax: `tokens` cuts it into words
(letters and digits of any script; everything else separates), and the dialect's query is
built from those words only, each one quoted. All words must match; the last one also
matches as a prefix, so results come as one types. Case never matters; SQLite also ignores
diacritics (PostgreSQL's `simple` configuration keeps them). Text in scripts without spaces
(Chinese, Japanese) is indexed by runs, so a query matches the start of a run, not its middle.

Who finds what is `core.visibility`'s rule: conversations are found through interactions the
caller may see, in conversations they may see (an operator outside a queue finds nothing of
it; integration tokens find no conversation, so never an internal note). Contacts are no
secret (see `core.visibility`).

Order numbers: `OrderSearch` is where the ERP bridge plugs in (`erp_bridge/order_search.py`,
registered by the app as `web.keys.ORDER_SEARCH`): a query that looks like an order number is
looked up in the ERP; with no ERP, or the ERP down, the search answers no orders.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Select,
    column,
    func,
    literal_column,
    select,
    table,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import InvalidInput
from core.models import Contact, Conversation, Identity, IdentityKind, Interaction, Role
from core.pagination import MAX_ID, decode_cursor, encode_cursor
from core.visibility import conversation_filter, interaction_filter

# The documents, exactly as migration 0012 indexes them on PostgreSQL.
INTERACTION_DOCUMENT = (
    "to_tsvector('simple'::regconfig, left(interaction.subject || ' ' || interaction.text, 100000))"
)
CONTACT_DOCUMENT = "to_tsvector('simple'::regconfig, contact.display_name)"
IDENTITY_DOCUMENT = (
    "to_tsvector('simple'::regconfig, translate(identity.address, '@.+-_', '     '))"
)

# Objects of migrations 0012 and 0016 that the models do not describe (tests/test_migrations.py and
# core/migrations/env.py leave them out of the comparison with the models).
SEARCH_TABLES = ("interaction_fts", "contact_fts", "suggestion_fts")
SEARCH_INDEXES = frozenset(
    {
        "ix_interaction_search",
        "ix_contact_search",
        "ix_identity_search",
        "ix_suggestion_fts_document",
        "ix_suggestion_fts_trigram",
    }
)

MAX_TOKENS = 12
MAX_QUERY_CHARS = 200
SNIPPET_CHARS = 160

_WORD = re.compile(r"[^\W_]+")


def is_search_object(name: str | None) -> bool:
    """Whether a table or index is part of the full-text machinery (not in the models)."""
    if name is None:
        return False
    return name in SEARCH_INDEXES or any(name.startswith(prefix) for prefix in SEARCH_TABLES)


def tokens(query: str) -> list[str]:
    """The words of a query, lower-cased: letters and digits of any script; at most
    MAX_TOKENS. Operators, quotes and brackets are separators, never syntax."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"a search is at most {MAX_QUERY_CHARS} characters", field="q")
    words = _WORD.findall(unicodedata.normalize("NFC", query).casefold())
    return list(dict.fromkeys(words))[:MAX_TOKENS]


def fts5_query(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression: every word, quoted; the last also as a prefix."""
    parts = [f'"{word}"' for word in words]
    if parts:
        parts[-1] += "*"
    return " ".join(parts)


def tsquery(words: Sequence[str]) -> str:
    """A `to_tsquery('simple', ...)` expression: every word, quoted; the last also as a
    prefix. Words are letters and digits only, so nothing in them is tsquery syntax."""
    parts = [f"'{word}'" for word in words]
    if parts:
        parts[-1] += ":*"
    return " & ".join(parts)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _ts_match(document: str, words: Sequence[str]) -> ColumnElement[bool]:
    query = func.to_tsquery(literal_column("'simple'::regconfig"), tsquery(words))
    return literal_column(document).op("@@")(query)


def _fts5_rowids(name: str, words: Sequence[str]) -> ColumnElement[bool]:
    fts = table(name, column("rowid"))
    return select(fts.c.rowid).where(literal_column(name).op("MATCH")(fts5_query(words)))  # type: ignore[return-value]


def interaction_match(dialect: str, words: Sequence[str]) -> ColumnElement[bool]:
    """Interactions whose subject or text hold every word (the last as a prefix)."""
    if dialect == "postgresql":
        return _ts_match(INTERACTION_DOCUMENT, words)
    return Interaction.id.in_(_fts5_rowids("interaction_fts", words))


def contact_ids_matching(dialect: str, words: Sequence[str]) -> list[Select[Any]]:
    """Queries of the ids of contacts whose name and addresses hold every word (the last as a
    prefix). On PostgreSQL: every word in the name, or every word in one address (names and
    addresses live in two indexes); on SQLite, names and addresses mixed ("anna gmail")."""
    if dialect == "postgresql":
        return [
            # Not correlated with an outer query on contact: its own scan of the index.
            select(Contact.id).where(_ts_match(CONTACT_DOCUMENT, words)).correlate(None),
            select(Identity.contact_id).where(_ts_match(IDENTITY_DOCUMENT, words)),
        ]
    fts = table("contact_fts", column("rowid"))
    return [select(fts.c.rowid).where(literal_column("contact_fts").op("MATCH")(fts5_query(words)))]


# --- snippets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    """A piece of a message around the first word found, with where the words are in it."""

    text: str
    highlights: list[tuple[int, int]]


def snippet(body: str, words: Sequence[str], width: int = SNIPPET_CHARS) -> Snippet:
    """The part of `body` (whitespace flattened) around the first match of any word, at most
    `width` characters, and the [start, end) spans of the words that start a word there."""
    flat = " ".join(body.split())
    folded = flat.casefold()
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(folded):
        token = match.group()
        if any(token == word or token.startswith(word) for word in words):
            length = max((len(word) for word in words if token.startswith(word)), default=0)
            spans.append((match.start(), match.start() + length))
    # Case folding can change lengths (ß -> ss); then the spans are not trustworthy.
    if len(folded) != len(flat):
        spans = []
    start = max(0, spans[0][0] - width // 3) if spans else 0
    if start > 0:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    end = min(len(flat), start + width)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    shift = len(prefix) - start
    visible = [(a + shift, b + shift) for a, b in spans if a >= start and b <= end]
    return Snippet(prefix + flat[start:end] + suffix, visible)


# --- conversations ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationHit:
    conversation: Conversation
    contact_name: str
    interaction_id: int
    occurred_at: datetime
    snippet: Snippet


def _visible(actor: Actor) -> list[ColumnElement[bool]]:
    """Interactions in a conversation, both visible to `actor` (the query joins the
    conversation). For everyone who sees any conversation, `interaction_filter` is "its
    conversation passes `conversation_filter`", already checked on the join: it is added only
    where the two differ (integration tokens, who see no conversation), so the common query
    has one visibility test, not two. tests/test_visibility.py checks every caller."""
    conditions = [Interaction.conversation_id.is_not(None), conversation_filter(actor)]
    if actor.role == Role.INTEGRATION or (actor.operator_id is None and not actor.is_supervisor):
        conditions.append(interaction_filter(actor))
    return conditions


async def _grouped(
    session: AsyncSession, actor: Actor, words: Sequence[str], before: int | None, limit: int
) -> list[tuple[int, int]]:
    """(conversation, newest visible match) of the next limit + 1 conversations, grouped in
    one query (PostgreSQL: the GIN index gives the matches, a hash aggregate the rest)."""
    newest = func.max(Interaction.id).label("hit_id")
    grouped = (
        select(Interaction.conversation_id, newest)
        .join(Conversation, Conversation.id == Interaction.conversation_id)
        .where(interaction_match(_dialect(session), words), *_visible(actor))
        .group_by(Interaction.conversation_id)
    )
    if before is not None:
        grouped = grouped.having(func.max(Interaction.id) < before)
    rows = await session.execute(grouped.order_by(newest.desc()).limit(limit + 1))
    return [(conversation_id or 0, hit_id) for conversation_id, hit_id in rows]


async def _walk_fts5(
    session: AsyncSession, actor: Actor, words: Sequence[str], before: int | None, limit: int
) -> list[tuple[int, int]]:
    """The same as `_grouped`, by walking FTS5's matches newest first in growing chunks
    (FTS5 reads a rowid range in either order cheaply) until limit + 1 conversations are
    found: a common word costs one small chunk instead of grouping every match."""
    match = fts5_query(words)
    found: list[tuple[int, int]] = []
    seen: set[int] = set()
    upper = MAX_ID if before is None else before
    chunk = 200
    while len(found) <= limit:
        fts = text(
            "SELECT rowid FROM interaction_fts WHERE interaction_fts MATCH :match"
            " AND rowid < :upper ORDER BY rowid DESC LIMIT :chunk"
        ).bindparams(match=match, upper=upper, chunk=chunk)
        ids = list(await session.scalars(fts))
        if not ids:
            break
        visible = await session.execute(
            select(Interaction.id, Interaction.conversation_id)
            .join(Conversation, Conversation.id == Interaction.conversation_id)
            .where(Interaction.id.in_(ids), *_visible(actor))
            .order_by(Interaction.id.desc())
        )
        new: list[tuple[int, int]] = []
        for interaction_id, conversation_id in visible:
            if conversation_id is not None and conversation_id not in seen:
                seen.add(conversation_id)
                new.append((conversation_id, interaction_id))
        if before is not None and new:
            # Conversations with a newer match were on an earlier page.
            shown = await session.scalars(
                select(Interaction.conversation_id)
                .where(
                    Interaction.conversation_id.in_([item[0] for item in new]),
                    Interaction.id >= before,
                    Interaction.id.in_(_fts5_rowids("interaction_fts", words)),
                    *_visible(actor),
                )
                .distinct()
            )
            earlier = set(shown)
            new = [item for item in new if item[0] not in earlier]
        found += new
        if len(ids) < chunk:
            break
        upper = ids[-1]
        chunk = min(chunk * 4, 10_000)
    return found[: limit + 1]


async def search_conversations(
    session: AsyncSession,
    actor: Actor,
    query: str,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[ConversationHit], str | None]:
    """Conversations the actor may see with a message (or note) they may see holding every
    word; the conversation with the newest such message first, each once, with that message
    as the snippet. The cursor is the id of the last hit's message."""
    words = tokens(query)
    if not words:
        return [], None
    before = decode_cursor(cursor, int)[0] if cursor else None
    if _dialect(session) == "sqlite":
        rows = await _walk_fts5(session, actor, words, before, limit)
    else:
        rows = await _grouped(session, actor, words, before, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], None
    hit_ids = [hit_id for _, hit_id in rows]
    messages = {
        item.id: item
        for item in await session.scalars(select(Interaction).where(Interaction.id.in_(hit_ids)))
    }
    conversations = {
        item.id: item
        for item in await session.scalars(
            select(Conversation).where(Conversation.id.in_([row[0] for row in rows]))
        )
    }
    names = {
        row[0]: row[1]
        for row in await session.execute(
            select(Contact.id, Contact.display_name).where(
                Contact.id.in_({item.contact_id for item in conversations.values()})
            )
        )
    }
    hits = []
    for _, hit_id in rows:
        message = messages[hit_id]
        conversation = conversations[message.conversation_id or 0]
        body = message.text if message.text.strip() else message.subject
        hits.append(
            ConversationHit(
                conversation=conversation,
                contact_name=names.get(conversation.contact_id, ""),
                interaction_id=hit_id,
                occurred_at=message.occurred_at,
                snippet=snippet(body, words),
            )
        )
    return hits, encode_cursor(hit_ids[-1]) if more else None


# --- contacts -------------------------------------------------------------------------------


def contact_condition(
    dialect: str, query: str, exact_addresses: Sequence[str]
) -> ColumnElement[bool] | None:
    """Contacts matching a person's query: by the full-text index, or by one of
    `exact_addresses` (the query as a normalized email or phone number). None: no words,
    nothing to filter by. One IN over a UNION, so each part is answered by its index."""
    words = tokens(query)
    parts: list[Select[Any]] = []
    if words:
        parts += contact_ids_matching(dialect, words)
    if exact_addresses:
        parts.append(
            # Every kind named, so the (kind, address) unique index answers.
            select(Identity.contact_id).where(
                Identity.kind.in_(list(IdentityKind)),
                Identity.address.in_(list(exact_addresses)),
            )
        )
    if not parts:
        return None
    return Contact.id.in_(union(*parts))


def has_tag(dialect: str, tag: str) -> ColumnElement[bool]:
    """Contacts tagged `tag` (tags are a JSON list on the contact row)."""
    if dialect == "postgresql":
        return text("contact.tags @> jsonb_build_array(CAST(:search_tag AS text))").bindparams(
            search_tag=tag
        )  # type: ignore[return-value]
    return text(
        "EXISTS (SELECT 1 FROM json_each(contact.tags) WHERE json_each.value = :search_tag)"
    ).bindparams(search_tag=tag)  # type: ignore[return-value]


# --- order numbers (the ERP bridge's extension point) ----------------------------------------


@dataclass(frozen=True)
class OrderHit:
    """An order the ERP knows by the number searched for, and whose it is."""

    number: str
    contact_id: int | None
    summary: str


class OrderSearch(Protocol):
    """What the ERP bridge provides to find orders by number (`web.keys.ORDER_SEARCH`); when
    none is registered, the search answers no orders."""

    async def __call__(self, query: str, limit: int) -> list[OrderHit]: ...
