"""Start real `omnicrm serve` processes for tests that need more than one server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: asyncio.subprocess.Process


@asynccontextmanager
async def omnicrm_server(
    database_url: str,
    extra_env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    module: str = "tests.run_cli",
    arguments: Sequence[str] = (),
) -> AsyncIterator[RunningServer]:
    """Run `omnicrm serve [arguments]` on a free port until the block ends; waits until it is
    healthy. `module` runs the command (tests.run_cli, or a variant that crashes on purpose)."""
    port = free_port()
    env = {
        **os.environ,
        "OMNICRM_DATABASE_URL": database_url,
        "OMNICRM_SECRET_KEY": "test-secret-key",
        "OMNICRM_PORT": str(port),
        "OMNICRM_LOG_LEVEL": "WARNING",
        # One process unless the test asks for more (tests/test_serve_workers.py): tests that
        # kill a server mean the process that serves.
        "OMNICRM_WORKERS": "1",
        **(extra_env or {}),
    }
    with log_path.open("wb") if log_path else open(os.devnull, "wb") as log:  # noqa: ASYNC230
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,  # the omnicrm command, at the suite's clock
            "serve",
            *arguments,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(url, process)
            yield RunningServer(url, process)
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_healthy(url: str, process: asyncio.subprocess.Process, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"omnicrm serve exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"omnicrm serve at {url} did not become healthy")
            await asyncio.sleep(0.1)
