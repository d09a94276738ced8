"""Waiting for background work in the tests: poll a condition until it holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

WAIT_SECONDS = 30.0


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT_SECONDS
) -> None:
    """Return once `check()` holds; AssertionError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
