"""The suggestion engine's interface: given a customer's question, the indexed answers
(`core.models.SuggestionDoc`) that best answer it.

An engine is a module of this package with one `SuggestionEngine` subclass. Its public
`search` and `index` are final and hold the policy every engine shares (an empty question
finds nothing, the number of hits is bounded, each search is timed for the metrics); the
engine implements `do_search` and `do_index`.

Invariants every engine keeps:
- `do_search` returns only documents satisfying `allowed` (the caller's visibility,
  `core.visibility.suggestion_filter`), best first, at most `limit`, each once.
- `do_index` makes the given documents findable as they are now; called again for a document
  it replaces what it had. A deleted document is never found again (the database removes
  its index rows: a cascade on PostgreSQL, a trigger on SQLite).
- Scores compare within one search of one engine only.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, final

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import SuggestionDoc

# A search returns at most this many hits: enough to rank, deduplicate and filter to three.
MAX_HITS = 200
# The characters of a question an engine reads (a long email's first paragraphs).
MAX_QUESTION_CHARS = 2000


class SearchObserver(Protocol):
    """Told how long each search took (the app's metrics)."""

    def __call__(self, engine: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Question:
    """What the customer asked, in their language (a tag such as "ru"; None if unknown)."""

    text: str
    language: str | None = None


@dataclass(frozen=True)
class Hit:
    doc_id: int
    # The engine's own scale, higher is better.
    score: float


class SuggestionEngine(ABC):
    """Finds indexed answers for a question; see the module's invariants."""

    name: ClassVar[str]
    # The question languages the engine reads well (None: any); for another language the
    # service asks the lexical engine instead.
    languages: ClassVar[frozenset[str] | None] = None

    def reads(self, language: str | None) -> bool:
        """Whether the engine reads questions in `language` (unknown: assumed so)."""
        return self.languages is None or language is None or language in self.languages

    def __init__(self, observer: SearchObserver | None = None) -> None:
        self.observer = observer

    @final
    async def search(
        self,
        session: AsyncSession,
        question: Question,
        *,
        allowed: ColumnElement[bool],
        limit: int = 10,
    ) -> list[Hit]:
        text = question.text[:MAX_QUESTION_CHARS]
        if not text.strip():
            return []
        limit = max(1, min(limit, MAX_HITS))
        started = time.perf_counter()
        try:
            hits = await self.do_search(
                session, Question(text, question.language), allowed=allowed, limit=limit
            )
        finally:
            if self.observer is not None:
                self.observer(self.name, time.perf_counter() - started)
        return hits[:limit]

    @final
    async def index(self, session: AsyncSession, docs: Sequence[SuggestionDoc]) -> None:
        if docs:
            await self.do_index(session, docs)

    @abstractmethod
    async def do_search(
        self,
        session: AsyncSession,
        question: Question,
        *,
        allowed: ColumnElement[bool],
        limit: int,
    ) -> list[Hit]: ...

    @abstractmethod
    async def do_index(self, session: AsyncSession, docs: Sequence[SuggestionDoc]) -> None: ...
