"""Routing at scale: how fast the routing service decides, on SQLite and on PostgreSQL.

For each backend it builds a fresh database (bulk inserts): 1,000 operators (most available,
some away, busy or offline; capacities such as messaging 5 / email 20, a voice seat for some, a
total cap for others) working in 20 queues (50-100 members each, every operator in one or two),
and 10,000 conversations waiting in those queues over mixed channels, more than the operators
have room for. The queues use the strategy chains people configure: least busy, round robin,
skills match with a required-skills expression, sticky; most assign directly, a few make offers;
one keeps business hours, one overflows. Then, in the same run:

1. the drain: routing passes, each in its own transaction as the engine runs them, until a pass
   decides nothing more; the rest of the work waits, each with its "nobody has room" note;
   `routing.strategies.decide` and the service's writes are timed per decision;
2. idle passes: what one pass costs while that backlog waits and nothing can change, both a
   complete one (as after an event, and the engine's safety net every 30 s) and an
   incremental one (nothing changed since a pass that left nothing it could give: the engine
   skips the waiting work, `run_pass(settled=True)`);
3. a trickle: one conversation arrives (ingest, queue rules) and one is resolved at a time, and a
   pass runs: the time from the arrival's commit to the pass's commit, which either gives the
   work to an operator or explains why it waits; offers are accepted at once, outside the timing.
   The room a random resolution frees goes to older, higher-priority work, so these arrivals
   mostly wait; every second arrival is followed by one that can be given: a VIP customer's
   (priority 50, above the backlog's, through the VIP queue rule) committed with the resolution
   of work a VIP-queue member holds on the same channel, timed to the pass that offers it;
4. the ceiling: a bare UPDATE of the conversation and INSERT of a decision log row per decision,
   with the same driver, committed every 500 as a pass does.

This module is the command; bench/routing_center.py builds the contact center,
bench/routing_scenarios.py runs and times the four parts, bench/routing_report.py prints them.

    python bench/routing.py [--operators 1000] [--conversations 10000] [--queues 20]
                            [--arrivals 200] [--trickle-seconds 300]
                            [--backend sqlite|postgresql|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import postgresql_unreachable  # noqa: E402 - the path is set up just above
from bench.routing_center import Sizes  # noqa: E402
from bench.routing_report import report  # noqa: E402
from bench.routing_scenarios import Figures, run_backend  # noqa: E402


async def run(sizes: Sizes, backends: Sequence[str]) -> list[Figures]:
    results = []
    for backend in backends:
        if backend == "postgresql":
            problem = await postgresql_unreachable()
            if problem is not None:
                print(f"postgresql: skipped, {problem}")
                continue
        figures = await run_backend(backend, sizes)
        print(report(figures))
        print()
        results.append(figures)
    return results


def main(argv: Sequence[str] | None = None) -> list[Figures]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--operators", type=int, help="default 1000 (--quick: 60)")
    parser.add_argument("--conversations", type=int, help="waiting; default 10000 (--quick: 600)")
    parser.add_argument("--queues", type=int, help="default 20 (--quick: 10)")
    parser.add_argument("--arrivals", type=int, help="trickle arrivals; default 200 (--quick: 20)")
    parser.add_argument(
        "--trickle-seconds", type=float, default=300.0, help="stop the trickle after this long"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    small = args.quick
    sizes = Sizes(
        operators=args.operators or (60 if small else 1000),
        conversations=args.conversations or (600 if small else 10_000),
        queues=args.queues or (10 if small else 20),
        arrivals=args.arrivals if args.arrivals is not None else (20 if small else 200),
        trickle_seconds=args.trickle_seconds,
    )
    if min(sizes.operators, sizes.conversations, sizes.queues) < 1 or sizes.arrivals < 0:
        parser.error("operators, conversations and queues must be at least 1, arrivals 0 or more")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"routing bench: {sizes.operators:,} operators, {sizes.queues} queues,"
        f" {sizes.conversations:,} waiting conversations, {sizes.arrivals} arrivals"
        f" (at most {sizes.trickle_seconds:g} s)\n"
    )
    return asyncio.run(run(sizes, backends))


if __name__ == "__main__":
    main()
