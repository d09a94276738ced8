"""The semantic engine (when `omnicrm[semantic]` is installed): answers found by meaning,
with no word in common; vectors made in the background; visibility kept."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from core.db import SessionFactory
from core.models import Role
from core.settings import Settings
from core.suggestions import semantic
from core.suggestions.semantic import SHARED_EMBEDDER, SemanticEngine, available, embed_pending
from tests.conftest import new_user
from tests.test_conversations_api import json_of, queue_with
from tests.test_suggestions_api import answer_and_resolve, asks
from web.app import create_app
from web.keys import SUGGESTIONS

pytestmark = pytest.mark.skipif(
    not available(), reason="the semantic engine is not installed (omnicrm[semantic])"
)


async def test_an_answer_is_found_by_meaning_and_only_for_those_who_may_see_it(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Any,
    aiohttp_client: Any,
) -> None:
    # Every search looks for new vectors (in service, at most every 2 s).
    monkeypatch.setattr(semantic, "REFRESH_SECONDS", 0.0)
    app = create_app(
        settings.model_copy(update={"suggestion_engine": "semantic"}), background_workers=False
    )
    server: TestServer = await aiohttp_server(app)
    assert isinstance(app[SUGGESTIONS].engines["semantic"], SemanticEngine)
    anna = await new_user(server, sessions, aiohttp_client, Role.OPERATOR)
    luis = await new_user(server, sessions, aiohttp_client, Role.OPERATOR)
    refunds = await queue_with(sessions, "Refunds", anna)
    general = await queue_with(sessions, "General", anna, luis)
    asked = await asks(
        sessions,
        "r1",
        "a@example.com",
        "I would like my money back for the broken kettle",
        queue_id=refunds,
    )
    await answer_and_resolve(anna, asked, "We have started your refund; it takes 5 days.")
    asked = await asks(
        sessions, "d1", "b@example.com", "When will the parcel be delivered?", queue_id=general
    )
    await answer_and_resolve(anna, asked, "Deliveries take two to three working days.")

    engine = app[SUGGESTIONS].engines["semantic"]
    assert isinstance(engine, SemanticEngine)
    # Until the background pass made their vectors, the semantic engine knows no answer.
    asking = await asks(
        sessions,
        "n1",
        "c@example.com",
        "Can I get reimbursed? The product is damaged.",
        queue_id=general,
    )
    path = f"/api/v1/conversations/{asking}/suggestions"
    body = await json_of(await anna.get(path), 200)
    assert (body["engine"], body["suggestions"]) == ("semantic", [])
    assert await embed_pending(sessions, engine) == 2
    assert await embed_pending(sessions, engine) == 0

    body = await json_of(await anna.get(path), 200)
    # Not one word in common with "money back ... broken kettle", and still the refund.
    assert body["suggestions"][0]["text"] == "We have started your refund; it takes 5 days."
    # Luis is not in the refunds queue: only the delivery answer is his to see.
    theirs = await json_of(await luis.get(path), 200)
    assert [item["text"] for item in theirs["suggestions"]] == [
        "Deliveries take two to three working days."
    ]

    # The model reads English: a question in Russian goes to the lexical engine.
    russian = await asks(
        sessions, "n2", "d@example.com", "Где моя посылка? Она ещё не пришла.", queue_id=general
    )
    body = await json_of(await anna.get(f"/api/v1/conversations/{russian}/suggestions"), 200)
    assert (body["language"], body["engine"]) == ("ru", "lexical")


def test_the_model_ships_in_its_package_and_gives_unit_vectors() -> None:
    vectors = SHARED_EMBEDDER.embed(["Where is my order?", "Where is my parcel?", "Reset password"])
    assert vectors.shape == (3, 384)
    norms = (vectors * vectors).sum(axis=1)
    assert all(abs(norm - 1.0) < 1e-4 for norm in norms)
    near, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert near > far
