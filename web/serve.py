"""How `omnicrm serve` runs: one process, or web processes beside a worker process.

- **One process** (always on SQLite, a single-process database; on PostgreSQL with
  `workers = 1`): the web server and the background work (routing, the outbox, the channels'
  pollers, timers and schedules) share one event loop.
- **Several** (PostgreSQL; by default one web process per CPU core): a supervisor starts
  `workers` web processes that listen on one port (SO_REUSEPORT: the kernel spreads the
  connections) and answer HTTP only, and one worker process (`omnicrm worker`) that does the
  background work, so no routing pass, delivery or poll runs on a loop that answers HTTP. They
  share nothing but the database: events cross processes by LISTEN/NOTIFY, deliveries are
  claimed with SKIP LOCKED, a polled account is read by one process (an advisory lock), routing
  passes are serialised by a lock, and rate limits count in the database.

The supervisor starts a process that died again (after a pause that grows while it keeps
dying) and stops them all on SIGTERM or SIGINT, each given `STOP_GRACE_SECONDS` to finish. A
process that exits with 2 (bad settings) stops them all: starting it again cannot help.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Literal

from aiohttp import web

from core.logfields import log_fields
from core.settings import Settings
from core.workers import wait_for_any
from web.cli_common import CliError

log = logging.getLogger("omnicrm")

Role = Literal["all", "web", "worker"]
STOP_GRACE_SECONDS = 30.0
# A process that ran this long before dying is started again at once (after the first pause).
HEALTHY_RUN_SECONDS = 60.0
BAD_SETTINGS = 2


def web_processes(settings: Settings) -> int:
    """How many web processes `serve` runs (CliError when SQLite is asked for several)."""
    if not settings.is_postgresql:
        if (settings.workers or 1) > 1:
            raise CliError(
                f"workers = {settings.workers} needs PostgreSQL: SQLite serves from one process",
                code=BAD_SETTINGS,
            )
        return 1
    return settings.workers or os.cpu_count() or 1


async def run_role(settings: Settings, role: Role) -> int:
    """Run this process's part until SIGTERM or SIGINT: the whole server ("all"), its web
    server alone ("web", one of several on the port), or its background work ("worker")."""
    from web.app import create_app

    background = role != "web"
    app = create_app(settings, background_workers=background, routing=background)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if role != "worker":
            site = web.TCPSite(runner, settings.host, settings.port, reuse_port=role == "web")
            try:
                await site.start()
            except OSError as exc:
                raise CliError(
                    f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
                ) from None
        url = f"http://{settings.host}:{settings.port}"
        # What start-up made (modules, the app, caches) lives as long as the process: out of
        # the collector's sight, a full collection scans only what requests make (bench/).
        gc.freeze()
        log.info("omnicrm started", extra=log_fields(role=role, url=url, pid=os.getpid()))
        if role == "all":
            print(f"omnicrm is serving on {url}", flush=True)
        # SIGTERM (a process manager, `kill`, the supervisor) stops as gracefully as Ctrl-C:
        # workers finish their current step and the database pool closes.
        await _until_signalled()
        log.info("omnicrm stopping", extra=log_fields(role=role))
    finally:
        await runner.cleanup()
    return 0


async def supervise(
    settings: Settings, command: Sequence[str], web_count: int, *, worker: bool = True
) -> int:
    """Run `web_count` web processes and (`worker`) one worker, each `command` + its role's
    words, until SIGTERM or SIGINT; 2 if one of them refused its settings, else 0."""
    stop = asyncio.Event()
    _on_signals(stop.set)
    environment = child_environment(settings)
    refused: list[int] = []
    roles: list[list[str]] = [["worker"]] if worker else []
    roles += [["serve", "--role", "web"]] * web_count

    async def keep_running(words: list[str]) -> None:
        pause = 1.0
        while not stop.is_set():
            started = asyncio.get_running_loop().time()
            process = await asyncio.create_subprocess_exec(*command, *words, env=environment)
            exited = asyncio.ensure_future(process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():  # also when the process ended of the same Ctrl-C
                await _stop(process)
                return
            code = process.returncode
            if code == BAD_SETTINGS:
                refused.append(code)
                stop.set()
                return
            ran = asyncio.get_running_loop().time() - started
            pause = 1.0 if ran >= HEALTHY_RUN_SECONDS else min(pause * 2, 30.0)
            log.error(
                "an omnicrm process exited; starting another",
                extra=log_fields(role=words[-1], exit_code=code, pause_seconds=pause),
            )
            await wait_for_any(stop, seconds=pause)

    url = f"http://{settings.host}:{settings.port}"
    kinds = f"{web_count} web processes" + (" and a worker" if worker else ", no worker")
    print(f"omnicrm is serving on {url} ({kinds})", flush=True)
    await asyncio.gather(*(keep_running(words) for words in roles))
    return BAD_SETTINGS if refused else 0


def child_command(config: str | None) -> list[str]:
    """The command line that starts another process of this omnicrm: the same Python, the same
    entry module, the same config file (the environment is inherited, see `child_environment`)."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    # `python -m web.cli` (or a module wrapping it) names itself; the `omnicrm` script does not.
    module = spec.name if spec is not None and spec.name != "__main__" else "web.cli"
    return [sys.executable, "-m", module, *(["--config", config] if config else [])]


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of the processes: this one's, with the address it was told to serve
    on (which may have come from `--host`/`--port`)."""
    return {**os.environ, "OMNICRM_HOST": settings.host, "OMNICRM_PORT": str(settings.port)}


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


def _on_signals(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, callback)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    _on_signals(stop.set)
    await stop.wait()
