"""The engines a process runs, and which one answers (`suggestion_engine` in the settings).

`auto` is `DEFAULT_ENGINE`, the engine chosen from `bench/suggestions.py`'s figures
(docs/suggestions.md gives them and the reasons); an engine that is not installed (the
semantic one without `omnicrm[semantic]`) falls back to the lexical one, with a warning, never
an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.db import SessionFactory
from core.suggestions.base import SearchObserver, SuggestionEngine
from core.suggestions.lexical import LexicalEngine
from core.suggestions.semantic import SemanticEngine, available, embed_pending
from core.suggestions.service import SuggestionService

log = logging.getLogger(__name__)

CHOICES = ("auto", "lexical", "semantic")
DEFAULT_ENGINE = "semantic"
# The semantic engine's background pass: how often it looks for documents to embed.
EMBED_EVERY_SECONDS = 10.0


def build_service(configured: str, observer: SearchObserver | None = None) -> SuggestionService:
    wanted = DEFAULT_ENGINE if configured == "auto" else configured
    engines: dict[str, SuggestionEngine] = {"lexical": LexicalEngine(observer)}
    if wanted == "semantic":
        if available():
            engines["semantic"] = SemanticEngine(observer=observer)
        elif configured == "semantic":
            log.warning(
                "the semantic suggestion engine is not installed (pip install "
                "'omnicrm[semantic]'); the lexical engine answers"
            )
    return SuggestionService(engines, wanted)


async def embed_in_background(
    sessions: SessionFactory, service: SuggestionService, stop: asyncio.Event
) -> None:
    """Keeps the semantic engine's vectors in step with the index, until `stop`."""
    engine = service.engines.get("semantic")
    if not isinstance(engine, SemanticEngine):
        return
    while not stop.is_set():
        try:
            embedded = await embed_pending(sessions, engine)
            if embedded:
                log.info("embedded %d suggestion documents", embedded)
        except Exception:
            log.exception("embedding suggestion documents failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EMBED_EVERY_SECONDS)
