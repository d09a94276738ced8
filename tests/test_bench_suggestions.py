"""The suggestions benchmark runs end to end on a small index (SQLite, the lexical engine; no
timings checked), asking as the console does, its data split is what it says, and its
recommendation holds an engine to the latency budget at every size."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.suggestions import (
    DIALOGS,
    Corpus,
    EngineFigures,
    Scores,
    SizeFigures,
    Timed,
    load,
    main,
    recommend,
    split,
)
from core.suggestions.text import answer_key

needs_dialogs = pytest.mark.skipif(
    not DIALOGS.exists(), reason="the support-dialogs data set is not next to the project"
)


@needs_dialogs
def test_the_suggestions_bench_scores_and_times_the_lexical_engine_against_baselines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = main(["--quick"])

    (figures,) = result.sizes
    assert (figures.database, figures.size) == ("sqlite", 1000)
    (lexical,) = figures.engines
    assert lexical.engine == "lexical"
    # The suggestion requests (the service, as the console asks) and the engine alone.
    assert lexical.scores.asked == len(lexical.timed.latencies) == 54
    assert lexical.search_scores.asked == len(lexical.search_timed.latencies) == 54
    assert lexical.other_engine == 0
    # Any working engine does better than a random answer of the question's queue.
    assert lexical.scores.top3_rate > figures.random_queue.top3_rate
    assert lexical.scores.top1_rate > figures.random_queue.top1_rate
    assert figures.oracle.top3_rate == 1.0
    printed = capsys.readouterr().out
    for line in (
        "sqlite, 1,000 documents, 54 held-out questions",
        "lexical: suggestion request",
        "lexical: engine search only",
        "baseline: random answer of the queue",
        "baseline: most frequent intent's answer",
        "ceiling: oracle (an offered answer has it)",
        "floor: SELECT 1 round trip",
    ):
        assert line in printed
    # Which engine it recommends depends on the timings of the moment (the rule itself is
    # tested below on given figures): it names one, or says none keeps the budget and why.
    assert (
        "recommendation: default engine lexical" in printed
        or "recommendation: none: no engine keeps its p99 under 250 ms" in printed
    )
    assert "p99 ms" in printed


@needs_dialogs
def test_the_split_holds_out_a_fifth_of_each_intent_and_copies_keep_their_answer() -> None:
    dialogs = load()
    indexed, held_out = split(dialogs)

    assert split(dialogs) == (indexed, held_out)
    assert len(indexed) + len(held_out) == len(dialogs)
    assert not {d.question for d in indexed} & {d.question for d in held_out}
    all_, asked = Counter(d.intent for d in dialogs), Counter(d.intent for d in held_out)
    assert set(asked) == set(all_)
    assert all(abs(asked[intent] - all_[intent] / 5) <= 1 for intent in all_)
    # The first questions asked take turns by intent.
    assert len({d.intent for d in held_out[: len(all_)]}) == len(all_)
    corpus = Corpus(indexed)
    copies = [n * len(indexed) + 7 for n in range(8)]
    assert len({corpus.question(n) for n in copies}) == 4
    assert {answer_key(corpus.answer(n)) for n in copies} == {corpus.answer_key(7)}


def measured(database: str, size: int, engines: dict[str, tuple[float, float]]) -> SizeFigures:
    """Figures of one database and size: each engine's top-3 rate and p99 (ms)."""
    found = []
    for name, (top3, p99_ms) in engines.items():
        scores = Scores(asked=100, top1=int(top3 * 100), top3=int(top3 * 100), shown=300)
        found.append(EngineFigures(name, scores, Timed([p99_ms / 1000] * 100), Timed()))
    return SizeFigures(database, size, 0.0, found, Scores(), Scores(), Scores(), Timed(), None, 0.0)


def test_the_recommendation_holds_each_engine_to_the_budget_at_every_size() -> None:
    # The semantic engine finds more and keeps within 250 ms at 100,000 answers, but not at
    # 10,000 on SQLite: the lexical one, within the budget everywhere, is recommended.
    sizes = [
        measured("sqlite", 10_000, {"lexical": (0.95, 60), "semantic": (0.98, 630)}),
        measured("sqlite", 100_000, {"lexical": (0.95, 200), "semantic": (0.98, 210)}),
        measured("postgresql", 10_000, {"lexical": (0.96, 80), "semantic": (0.98, 140)}),
        measured("postgresql", 100_000, {"lexical": (0.96, 130), "semantic": (0.98, 240)}),
    ]
    verdict = recommend(sizes, 250.0)
    assert verdict.startswith("recommendation: default engine lexical: ")
    assert "semantic: p99 over 250 ms at sqlite 10,000: 630 ms" in verdict
    # Within the budget everywhere, the better top-3 wins.
    sizes[0] = measured("sqlite", 10_000, {"lexical": (0.95, 60), "semantic": (0.98, 200)})
    assert recommend(sizes, 250.0).startswith("recommendation: default engine semantic: ")
    # Over it somewhere each: none, and which came closest.
    verdict = recommend(sizes, 150.0)
    assert verdict.startswith("recommendation: none: ")
    assert verdict.endswith("closest to the budget: lexical (worst p99 200 ms)")
