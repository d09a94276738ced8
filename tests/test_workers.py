"""Background workers stop between units of work: a unit under way finishes, an idle worker
stops at once, and one that overruns its grace is cancelled."""

from __future__ import annotations

import asyncio

from core.workers import stop_task, wait_for_any


async def test_a_unit_under_way_finishes_before_the_worker_stops() -> None:
    stop = asyncio.Event()
    started, finished = asyncio.Event(), []

    async def worker() -> None:
        while not stop.is_set():
            started.set()
            await asyncio.sleep(0.2)  # a unit of work: a transaction, say
            finished.append(True)
            await wait_for_any(stop, seconds=60)

    task = asyncio.create_task(worker())
    await started.wait()
    await stop_task(task, stop, grace=5)
    assert finished == [True]
    assert task.done()
    assert not task.cancelled()


async def test_an_idle_worker_stops_at_once_and_an_overrunning_one_is_cancelled() -> None:
    stop = asyncio.Event()
    idle = asyncio.create_task(wait_for_any(asyncio.Event(), stop, seconds=60))
    await asyncio.sleep(0)
    await stop_task(idle, stop, grace=5)
    assert idle.done()
    assert not idle.cancelled()

    stuck = asyncio.create_task(asyncio.sleep(60))
    await stop_task(stuck, asyncio.Event(), grace=0.05)
    assert stuck.cancelled()


async def test_waiting_ends_on_the_first_event_or_the_time() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    second.set()
    await asyncio.wait_for(wait_for_any(first, second, seconds=60), 1)
    await asyncio.wait_for(wait_for_any(first, seconds=0.01), 1)
    assert not first.is_set()
