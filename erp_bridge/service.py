"""The ERP a server process uses: built from the stored connection at start, rebuilt when an
admin changes it (noticed by the connection's `updated_at`, looked at no more often than
every `recheck` seconds), closed at shutdown. One adapter per process, so its cache and
circuit breaker are shared by every request of the process.

A connection that cannot be built (disabled, its kind not installed, settings no longer
valid, a key that cannot read its secret) is no adapter: `problem` says why, the console and
`/healthz` show it, and routing goes on without ERP facts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.credentials import CredentialCipher, CredentialError
from core.db import SessionFactory
from core.logfields import log_fields
from core.models import ErpConnection
from erp_bridge.base import ErpAdapter, ErpError, ErpObserver
from erp_bridge.config import build_adapter

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0


class ErpService:
    """Holds the process's adapter (see the module docstring)."""

    def __init__(
        self,
        sessions: SessionFactory,
        cipher: CredentialCipher,
        *,
        observer: ErpObserver | None = None,
        recheck: float = RECHECK_SECONDS,
        **policy: Any,
    ) -> None:
        self.sessions = sessions
        self.cipher = cipher
        self.policy = dict(policy, observer=observer) if observer is not None else dict(policy)
        self.recheck = recheck
        self.problem: str | None = None
        self._adapter: ErpAdapter | None = None
        self._version: tuple[str, datetime] | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    def current(self) -> ErpAdapter | None:
        """The adapter as last built (routing's enricher takes it as it is)."""
        return self._adapter

    async def adapter(self) -> ErpAdapter | None:
        """The adapter, rebuilt first if the stored connection changed."""
        if time.monotonic() - self._checked >= self.recheck:
            await self.refresh()
        return self._adapter

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            self._checked = time.monotonic()
            try:
                async with self.sessions() as session:
                    row = (
                        await session.execute(select(ErpConnection.kind, ErpConnection.updated_at))
                    ).first()
            except (SQLAlchemyError, OSError) as exc:
                # The database is down: keep what we have; /healthz says the database is.
                self.problem = self.problem or f"the database is unreachable: {type(exc).__name__}"
                return
            version = (row[0], row[1]) if row is not None else None
            if not force and self._version == version and (self._adapter or self.problem):
                return
            old = self._adapter
            try:
                self._adapter = await build_adapter(self.sessions, self.cipher, **self.policy)
                self.problem = None
            except (ErpError, CredentialError, SQLAlchemyError, OSError) as exc:
                self._adapter = None
                self.problem = str(exc)
                log.warning("no ERP adapter", extra=log_fields(problem=self.problem))
            self._version = version
            if old is not None and old is not self._adapter:
                await old.close()

    async def close(self) -> None:
        if self._adapter is not None:
            await self._adapter.close()
            self._adapter = None

    def health(self) -> ErpStatus:
        """How the ERP is doing in this process (`/healthz`, `/metrics`)."""
        adapter = self._adapter
        if adapter is None:
            kind = self._version[0] if self._version is not None else None
            return ErpStatus(state="down", kind=kind, problem=self.problem)
        health = adapter.health
        breaker = adapter.breaker.state
        return ErpStatus(
            state="ok" if health.state in ("ok", "unknown") else health.state,
            kind=adapter.kind,
            breaker=breaker,
            latency_ms=health.last_latency_ms,
            last_success_at=health.last_success_at,
            stale_as_of=health.stale_as_of if health.state == "degraded" else None,
            last_error=health.last_error,
        )


class ErpStatus(BaseModel):
    """The ERP's state as an admin's monitoring reads it. What each call of this process
    found: `ok` (answered, or not asked yet), `degraded` (the ERP did not answer and cached
    answers read at `stale_as_of` were served instead) or `down` (it did not answer and
    nothing was cached, or there is no adapter: `problem` says why)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["ok", "degraded", "down"]
    kind: str | None = Field(default=None, description="the ERP's kind, e.g. odoo")
    breaker: Literal["closed", "open", "half_open"] | None = Field(
        default=None,
        description="the circuit breaker: open while the ERP is not asked (it kept failing), "
        "half_open while one call tries it again; none without an adapter",
    )
    latency_ms: float | None = Field(
        default=None, description="how long the last answered call took"
    )
    last_success_at: datetime | None = None
    stale_as_of: datetime | None = Field(
        default=None, description="while degraded: when the cached answers served were read"
    )
    last_error: str | None = None
    problem: str | None = Field(
        default=None, description="why there is no adapter (disabled, unreadable secret, ...)"
    )
