"""`omnicrm suggestions rebuild`: a database filled before suggestions existed gets its
index, with progress on stderr and a summary on stdout."""

from __future__ import annotations

from sqlalchemy import delete, select

from core.db import SessionFactory
from core.models import Role, SuggestionDoc
from tests.conftest import UserFactory
from tests.test_conversations_api import json_of, queue_with
from tests.test_erp_cli import Run
from tests.test_erp_cli import run as run  # the fixture: the CLI on the test's database
from tests.test_suggestions_api import answer_and_resolve, asks, suggested


async def test_rebuild_indexes_what_was_resolved_before_and_reports_progress(
    sessions: SessionFactory, make_user: UserFactory, run: Run
) -> None:
    anna = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", anna)
    for n in range(3):
        asked = await asks(
            sessions,
            f"old{n}",
            f"c{n}@example.com",
            f"Question {n} about my refund",
            queue_id=queue,
        )
        await answer_and_resolve(anna, asked, f"Refund answer number {n}.")
    boss = await make_user(Role.SUPERVISOR)
    await json_of(
        await boss.post(
            "/api/v1/canned-responses",
            json={"title": "Refund policy", "body": "Refunds take 5 days.", "shared": True},
        ),
        201,
    )
    # As if those had been stored by a version without suggestions.
    async with sessions() as session, session.begin():
        await session.execute(delete(SuggestionDoc))
    asking = await asks(sessions, "new", "new@example.com", "Where is my refund?", queue_id=queue)
    assert (await suggested(anna, asking))["suggestions"] == []

    result = await run("suggestions", "rebuild")
    assert result.code == 0, result.err
    assert result.out == "suggestion index rebuilt: 4 answers\n"
    # Not a terminal here: plain counts, the last one complete (3 conversations + 1 canned).
    assert result.err.splitlines()[-1] == "indexing: 4/4 sources"
    texts = [item["text"] for item in (await suggested(anna, asking))["suggestions"]]
    assert len(texts) == 3
    assert set(texts) <= {"Refunds take 5 days.", *(f"Refund answer number {n}." for n in range(3))}
    async with sessions() as session:
        kinds = sorted(doc.kind for doc in await session.scalars(select(SuggestionDoc)))
    assert kinds == ["canned", "reply", "reply", "reply"]

    # Again: the same index, nothing doubled.
    again = await run("suggestions", "rebuild")
    assert again.out == "suggestion index rebuilt: 4 answers\n"


async def test_embed_says_clearly_when_the_semantic_engine_is_not_in_use(run: Run) -> None:
    result = await run("suggestions", "embed")
    assert result.code == 1
    assert "the semantic engine is not in use" in result.error_line
