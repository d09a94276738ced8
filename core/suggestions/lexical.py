"""The lexical engine: the database's own full-text search (migration 0016).

PostgreSQL: each document's question is a tsvector made with its language's text-search
configuration (`text.ts_config`); a question is matched with the configuration of its own
language, any of its words (OR), ranked by `ts_rank` (normalised by document length). When
fewer than asked share a word with it (a misspelt question), the documents whose questions
are most similar by pg_trgm follow. (Indexing the answers too, or ranking every document by
trigrams, was slower and found the right answer less often: bench/suggestions.py.)

SQLite: FTS5 over the stems `text.terms` made of the question and the answer (PyStemmer,
the document's language), matched by any stem of the question (stemmed in its own
language), ranked by bm25 with the question weighing four times the answer. Stems that more
than `COMMON_SHARE` of the documents hold ("i", "the", "to") are left out of the match (read
from `suggestion_fts_vocab`): bm25 gives them almost no weight, yet matching them makes every
document a candidate to rank. At least `MIN_TERMS` of the question's rarest stems stay, and
an index of fewer than `MIN_DOCUMENTS` is matched on every stem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from core.models import SuggestionDoc
from core.suggestions import text as words
from core.suggestions.base import Hit, Question, SuggestionEngine

# What pg_trgm compares: the start of the question, lower-cased.
TRIGRAM_CHARS = 500
# bm25's column weights on SQLite: question, answer.
BM25_WEIGHTS = (1.0, 0.25)
# PostgreSQL: a document found by trigrams alone scores this share of its similarity (0..1)
# times the lowest score of those sharing a word.
TRIGRAM_WEIGHT = 0.5
# SQLite: a stem in more than this share of the documents is too common to match on...
COMMON_SHARE = 0.2
# ... unless fewer than this many of the question's stems would be left, or the index is
# too small for its frequencies to say anything.
MIN_TERMS = 3
MIN_DOCUMENTS = 200

_SQLITE_FTS = table("suggestion_fts", column("rowid"), column("question"), column("answer"))
_SQLITE_VOCAB = table("suggestion_fts_vocab", column("term"), column("doc"))
_PG_FTS = table("suggestion_fts", column("doc_id"), column("document"), column("question"))


def fts5_any(stems: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of the stems, each quoted (stems are letters and digits
    only, so nothing in them is query syntax)."""
    return " OR ".join(f'"{stem}"' for stem in stems)


def tsquery_any(words_: Sequence[str]) -> str:
    """A `to_tsquery` expression: any of the words (the configuration stems them)."""
    return " | ".join(f"'{word}'" for word in words_)


class LexicalEngine(SuggestionEngine):
    name = "lexical"

    async def do_search(
        self,
        session: AsyncSession,
        question: Question,
        *,
        allowed: ColumnElement[bool],
        limit: int,
    ) -> list[Hit]:
        found = words.query_terms(question.text, question.language)
        if not found:
            return []
        if session.get_bind().dialect.name == "postgresql":
            return await self._search_postgresql(session, question, found, allowed, limit)
        stems = await self._telling_stems(session, list(found))
        if not stems:
            return []
        return await self._search_sqlite(session, stems, allowed, limit)

    async def _telling_stems(self, session: AsyncSession, stems: list[str]) -> list[str]:
        """The question's stems that some document holds, the too common ones left out."""
        total = int(await session.scalar(select(func.count()).select_from(SuggestionDoc)) or 0)
        rows = await session.execute(
            select(_SQLITE_VOCAB.c.term, _SQLITE_VOCAB.c.doc).where(_SQLITE_VOCAB.c.term.in_(stems))
        )
        frequency = {str(term): int(doc) for term, doc in rows}
        known = sorted(frequency, key=lambda stem: frequency[stem])
        if total < MIN_DOCUMENTS:
            return known
        telling = [stem for stem in known if frequency[stem] <= COMMON_SHARE * total]
        return telling if len(telling) >= MIN_TERMS else known[:MIN_TERMS]

    async def _search_sqlite(
        self,
        session: AsyncSession,
        stems: list[str],
        allowed: ColumnElement[bool],
        limit: int,
    ) -> list[Hit]:
        rank = func.bm25(literal_column("suggestion_fts"), *BM25_WEIGHTS)
        query = (
            select(SuggestionDoc.id, rank.label("rank"))
            .select_from(_SQLITE_FTS.join(SuggestionDoc, SuggestionDoc.id == _SQLITE_FTS.c.rowid))
            .where(literal_column("suggestion_fts").op("MATCH")(fts5_any(stems)), allowed)
            .order_by(rank)
            .limit(limit)
        )
        # bm25 is lower for better matches: the score is its negation.
        return [Hit(doc_id, -float(rank_)) for doc_id, rank_ in (await session.execute(query))]

    async def _search_postgresql(
        self,
        session: AsyncSession,
        question: Question,
        found: dict[str, str],
        allowed: ColumnElement[bool],
        limit: int,
    ) -> list[Hit]:
        # A name from `text.SNOWBALL` or "simple", never the caller's text.
        name = words.ts_config(question.language)
        config: ColumnElement[Any] = literal_column(f"'{name}'::regconfig")
        # Written into the statement, not bound: PostgreSQL would otherwise keep reusing a
        # generic plan chosen while the index was small (bench/suggestions.py saw p99 633 ms
        # against 73 ms at 100k answers). Its words are letters and digits only.
        any_word = tsquery_any(list(found.values()))
        words_: BindParameter[str] = bindparam("tsquery", any_word, literal_execute=True)
        tsquery = func.to_tsquery(config, words_)
        document = _PG_FTS.c.document
        rank = func.ts_rank(document, tsquery, 1).label("score")
        joined = _PG_FTS.join(SuggestionDoc, SuggestionDoc.id == _PG_FTS.c.doc_id)
        query = (
            select(SuggestionDoc.id, rank)
            .select_from(joined)
            .where(document.op("@@")(tsquery), allowed)
            .order_by(rank.desc())
            .limit(limit)
        )
        hits = [Hit(doc_id, float(value)) for doc_id, value in (await session.execute(query))]
        if len(hits) >= limit:
            return hits
        # Too few share a word with the question (typos): the most similar questions by
        # trigrams follow, below every hit that shares a word.
        raw = question.text[:TRIGRAM_CHARS].lower()
        similarity = func.similarity(_PG_FTS.c.question, raw).label("similarity")
        fallback = (
            select(SuggestionDoc.id, similarity)
            .select_from(joined)
            .where(_PG_FTS.c.question.op("%")(raw), allowed)
            .order_by(similarity.desc())
            .limit(limit)
        )
        floor = min((hit.score for hit in hits), default=1.0)
        found_ids = {hit.doc_id for hit in hits}
        for doc_id, value in await session.execute(fallback):
            if doc_id not in found_ids and len(hits) < limit:
                hits.append(Hit(doc_id, floor * float(value) * TRIGRAM_WEIGHT))
        return hits

    async def do_index(self, session: AsyncSession, docs: Sequence[SuggestionDoc]) -> None:
        ids = [doc.id for doc in docs]
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(delete(_PG_FTS).where(_PG_FTS.c.doc_id.in_(ids)))
            statement = text(
                "INSERT INTO suggestion_fts (doc_id, document, question) VALUES (:id, "
                "to_tsvector(CAST(:config AS regconfig), :question), :trigram)"
            )
            rows = [
                {
                    "id": doc.id,
                    "config": words.ts_config(doc.language),
                    "question": doc.question,
                    "trigram": doc.question[:TRIGRAM_CHARS].lower(),
                }
                for doc in docs
            ]
            await session.execute(statement, rows)
            return
        await session.execute(delete(_SQLITE_FTS).where(_SQLITE_FTS.c.rowid.in_(ids)))
        rows = [
            {
                "rowid": doc.id,
                "question": " ".join(words.terms(doc.question, doc.language)),
                "answer": " ".join(
                    words.terms(words.without_placeholders(doc.answer), doc.language)
                ),
            }
            for doc in docs
        ]
        await session.execute(insert(_SQLITE_FTS), rows)
