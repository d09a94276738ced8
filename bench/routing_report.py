"""The routing benchmark's report (bench/routing.py): one backend's figures as printed lines,
the counts first, then a table of rates and latencies beside the bare-writes ceiling."""

from __future__ import annotations

from collections.abc import Sequence

from bench.common import percentile
from bench.routing_scenarios import Figures, Probes
from routing.scope import FULL_SECONDS


def ms(seconds: float) -> str:
    if seconds != seconds:  # no values
        return "—"
    return f"{seconds * 1000:,.2f} ms" if seconds < 1 else f"{seconds * 1000:,.0f} ms"


def row(what: str, rate: float | None, ratio: float | None, values: Sequence[float]) -> str:
    rate_text = f"{rate:,.0f}/s" if rate else "—"
    ratio_text = f"{ratio:.1%}" if ratio else "—"
    return (
        f"{what:<48}{rate_text:>10}{ratio_text:>9}{ms(percentile(values, 0.5)):>13}"
        f"{ms(percentile(values, 0.99)):>13}{len(values):>8,}"
    )


def per_pass(probes: Probes, passes: int) -> str:
    """How many decide() calls a pass made, and how long they took, on average."""
    if not passes:
        return "no passes"
    calls = sum(probes.outcomes.values())
    return f"{calls / passes:,.0f} decide() calls per pass taking {probes.deciding / passes:.2f} s"


def report(figures: Figures) -> str:
    center, probes = figures.center, figures.probes
    drain_seconds, given_seconds = figures.drain_seconds, figures.given_seconds
    given_rate = figures.decisions / given_seconds if given_seconds else 0.0
    # Every decision and explained wait is one UPDATE and one INSERT, as the ceiling's are.
    written = figures.decisions + len(probes.wait)
    written_rate = written / drain_seconds if drain_seconds else 0.0
    bare_rate = len(figures.bare) / figures.bare_seconds if figures.bare_seconds else 0.0
    decide_rate = len(probes.decide_cpu) / sum(probes.decide_cpu) if probes.decide_cpu else 0.0
    given = figures.arrivals.get("given", [])
    waits = figures.arrivals.get("waits", [])
    undecided = figures.arrivals.get("undecided", [])
    arrivals = len(given) + len(waits) + len(undecided)
    room_given = figures.room_arrivals.get("given", [])
    room_all = sum(len(times) for times in figures.room_arrivals.values())
    outcomes = ", ".join(f"{count:,} {name}" for name, count in sorted(probes.outcomes.items()))
    waiting = f"{figures.still_waiting:,} waiting"
    rest = drain_seconds - probes.deciding - probes.giving - probes.noting - probes.batched
    lines = [
        f"routing on {figures.backend}: {len(center.operator_ids):,} operators"
        f" ({center.available:,} available) in {len(center.queue_ids)} queues"
        f" ({center.memberships:,} memberships); {center.waiting:,} conversations waiting,"
        f" {center.held:,} held by operators; built in {figures.build_seconds:.1f} s",
        f"drain: {len(figures.passes)} passes in {drain_seconds:.1f} s:"
        f" {figures.assigned:,} assigned, {figures.offered:,} offered, the last of them"
        f" {given_seconds:.1f} s in; decide() said {outcomes}; {len(probes.wait):,} waits"
        f" explained; {waiting} after it",
        f"drain time: {probes.deciding:.1f} s in decide(), {probes.giving:.1f} s writing"
        f" decisions, {probes.noting:.1f} s writing notes, {probes.batched:.1f} s in the"
        f" batched writes, {rest:.1f} s the rest of the passes"
        " (queries, snapshots, commits)",
        f"idle: {len(figures.idle)} passes with {waiting} and nothing to give,"
        f" {per_pass(figures.idle_probes, len(figures.idle))},"
        f" {figures.idle_statements:.0f} statements per pass;"
        f" {len(figures.incremental)} incremental passes (nothing changed since),"
        f" {figures.incremental_statements:.0f} statements per pass",
        f"trickle: {arrivals:,} arrivals (one resolved per arrival) with {waiting}:"
        f" {len(given):,} given to an operator, {len(waits):,} told why they wait"
        + (f", {len(undecided):,} undecided" if undecided else "")
        + f"; {per_pass(figures.trickle_probes, arrivals + room_all)};"
        f" {room_all:,} VIP arrivals with a slot freed for them: "
        + ", ".join(
            f"{len(times):,} {'told why they wait' if name == 'waits' else name}"
            for name, times in sorted(figures.room_arrivals.items())
        )
        + f"; {figures.full_steps} full waiting steps on the engine's timer between them"
        f" (every {FULL_SECONDS:.0f} s of the simulated clock, untimed)",
        "",
        f"{'':<48}{'rate':>10}{'of bare':>9}{'p50':>13}{'p99':>13}{'n':>8}",
        row("decide() CPU per call (drain)", decide_rate, None, probes.decide_cpu),
        row("decide() + writes per decision (drain)", None, None, probes.decision),
        row("decide() + note per explained wait (drain)", None, None, probes.wait),
        row(
            "drain: given/s until the last given; pass time",
            given_rate,
            given_rate / bare_rate if bare_rate else None,
            figures.passes,
        ),
        row(
            "drain: given + explained/s, whole drain",
            written_rate,
            written_rate / bare_rate if bare_rate else None,
            [],
        ),
        row("bare UPDATE+INSERT per decision (ceiling)", bare_rate, None, figures.bare),
        row(f"idle pass ({waiting})", None, None, figures.idle),
        row("idle pass, incremental (nothing changed since)", None, None, figures.incremental),
        row("arrival commit -> assigned/offered, committed", None, None, given),
        row("arrival commit -> told why it waits, committed", None, None, waits),
        row("arrival with room commit -> given, committed", None, None, room_given),
    ]
    return "\n".join(lines)
