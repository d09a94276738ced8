"""Start real `omnicrm serve` processes for tests that need more than one server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Container, Mapping, Sequence
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
            await wait_ready(url, [process])
            yield RunningServer(url, process)
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_ready(
    url: str,
    processes: Sequence[asyncio.subprocess.Process],
    *,
    method: str = "GET",
    path: str = "/healthz",
    accept: Container[int] | None = (200,),
    name: str = "omnicrm serve",
    within: float = 30,
    interval: float = 0.1,
) -> None:
    """Until the server at `url` answers `method path` with a status in `accept` (None: with
    any status), asking every `interval` seconds: omnicrm's health check by default, a bare
    server's probe in the benchmarks (bench/common.py). RuntimeError as soon as one of
    `processes` has exited, TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    body = None if method == "GET" else b""
    async with aiohttp.ClientSession() as http:
        while True:
            for process in processes:
                if process.returncode is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                async with http.request(method, f"{url}{path}", data=body) as response:
                    await response.read()
                    if accept is None or response.status in accept:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{name} at {url} did not become healthy")
            await asyncio.sleep(interval)
