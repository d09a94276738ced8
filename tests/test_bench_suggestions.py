"""The suggestions benchmark runs end to end on a small index (SQLite, the lexical engine; no
timings checked), and its data split is what it says."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.suggestions import DIALOGS, Corpus, load, main, split
from core.suggestions.text import answer_key

pytestmark = pytest.mark.skipif(
    not DIALOGS.exists(), reason="the support-dialogs data set is not next to the project"
)


def test_the_suggestions_bench_scores_and_times_the_lexical_engine_against_baselines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = main(["--quick"])

    (figures,) = result.sizes
    assert (figures.database, figures.size) == ("sqlite", 1000)
    (lexical,) = figures.engines
    assert lexical.engine == "lexical"
    assert lexical.scores.asked == len(lexical.timed.latencies) == 54
    # Any working engine does better than a random answer of the question's queue.
    assert lexical.scores.top3_rate > figures.random_queue.top3_rate
    assert lexical.scores.top1_rate > figures.random_queue.top1_rate
    assert figures.oracle.top3_rate == 1.0
    printed = capsys.readouterr().out
    for line in (
        "sqlite, 1,000 documents, 54 held-out questions",
        "baseline: random answer of the queue",
        "baseline: most frequent intent's answer",
        "ceiling: oracle (an offered answer has it)",
        "floor: SELECT 1 round trip",
        "recommendation: default engine lexical",
    ):
        assert line in printed
    assert "p99 ms" in printed


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
