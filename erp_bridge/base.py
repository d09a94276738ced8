"""The ERP adapter interface: one policy for every ERP, over each ERP's own hooks.

An adapter (`erp_bridge/<kind>.py`) implements the abstract `do_*` hooks: find a customer,
list and get orders, list invoices, stock of a product, search products, check the
connection. It maps its ERP's records onto `erp_bridge.models` and raises `ErpNotFound`,
`ErpAuthError` or `ErpUnavailable` (or lets a network error or a timeout escape). The final
public methods own everything else, once for every ERP (python-telegram-bot's pattern):

- **a timeout** on every call (`timeout`);
- **a cache** per kind of answer with its own time to live (`CacheTtl`), so the console's
  card does not ask the ERP on every open; a cached answer older than its TTL is refreshed,
  and a caller may ask for a fresh one (`fresh=True`: an operator's reload);
- **stale answers when the ERP is down**: a failed refresh serves the last answer with
  `stale=True` and its `as_of` time (the console says "as of 10:42"), for up to
  `CacheTtl.keep_stale`;
- **a circuit breaker**: after `failures` consecutive failures the ERP is not asked for
  `cooldown` seconds (answers come from the cache, or `ErpUnavailable` at once), then one
  call tries it again (half open);
- **metrics and health**: every call is reported to the `ErpObserver` (kind, operation,
  outcome, seconds); `health()` says ok, degraded (serving stale) or down.

Plug-ins are passed in, with in-memory defaults next to their bases: `MemoryCache` for
`ErpCache`, `CircuitBreaker`, and a no-op observer.

Invariants: a public method never raises anything but `ErpError` subclasses; it never waits
longer than `timeout` (plus the time to read the cache); a not-found answer is cached like
any other (None), so a wrong order number does not reach the ERP on every keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar, final

from pydantic import BaseModel

from core.clock import utcnow
from core.db import SessionFactory
from core.logfields import log_fields
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    Order,
    OrderSummary,
    Product,
    Stock,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------


class ErpError(Exception):
    """The ERP could not answer; the message says why, in words for an admin."""

    outcome: ClassVar[str] = "error"


class ErpUnavailable(ErpError):
    """The ERP is down, slow or answering nonsense (and nothing is cached), or its circuit is
    open."""

    outcome: ClassVar[str] = "unavailable"


class ErpAuthError(ErpError):
    """The ERP refused our credentials (a wrong key, a user without rights)."""

    outcome: ClassVar[str] = "auth"


class ErpNotFound(ErpError):
    """The ERP has no such record (adapters raise it; the public methods answer None)."""

    outcome: ClassVar[str] = "not_found"


# --- answers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fresh(Generic[T]):
    """An answer and how old it is: `stale` when the ERP could not be asked and this is the
    last answer it gave (`as_of` says when)."""

    value: T
    as_of: datetime
    stale: bool = False


# --- plug-ins: cache, breaker, observer ------------------------------------------------------


@dataclass(frozen=True)
class CacheTtl:
    """How long each kind of answer is fresh, and how long a stale one may still be served."""

    customer: timedelta = timedelta(minutes=10)
    orders: timedelta = timedelta(minutes=2)
    order: timedelta = timedelta(minutes=2)
    invoices: timedelta = timedelta(minutes=5)
    stock: timedelta = timedelta(seconds=60)
    products: timedelta = timedelta(minutes=10)
    keep_stale: timedelta = timedelta(hours=24)

    def of(self, kind: str) -> timedelta:
        value = getattr(self, kind)
        assert isinstance(value, timedelta)
        return value


@dataclass(frozen=True)
class Cached:
    value: Any
    stored_at: datetime


class ErpCache(Protocol):
    """Where answers are kept between calls (per adapter: keys do not name the ERP)."""

    def get(self, key: tuple[str, ...]) -> Cached | None: ...

    def put(self, key: tuple[str, ...], entry: Cached) -> None: ...

    def clear(self) -> None: ...


class MemoryCache:
    """An in-process LRU cache of at most `size` answers (the default)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, ...], Cached] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> Cached | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, ...], entry: Cached) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class CircuitBreaker:
    """Stops asking an ERP that keeps failing: open after `failures` failures in a row, for
    `cooldown` seconds; then half open: one call may try, its outcome closes or reopens it.
    Times come from `monotonic` (a test passes its own)."""

    failures: int = 5
    cooldown: float = 30.0
    monotonic: Callable[[], float] = time.monotonic
    _failed: int = 0
    _opened_at: float | None = None
    _trying: bool = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.monotonic() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to the ERP now (half open: one at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trying:
            self._trying = True
            return True
        return False

    def succeeded(self) -> None:
        self._failed, self._opened_at, self._trying = 0, None, False

    def failed(self) -> None:
        self._failed += 1
        self._trying = False
        if self._opened_at is not None or self._failed >= self.failures:
            self._opened_at = self.monotonic()


class ErpObserver(Protocol):
    """Told of every call (the app's metrics)."""

    def observe(self, kind: str, operation: str, outcome: str, seconds: float) -> None: ...


class NoObserver:
    def observe(self, kind: str, operation: str, outcome: str, seconds: float) -> None:
        return None


@dataclass
class ErpHealth:
    """How the ERP has been answering (this process), for /healthz and the admin."""

    state: str = "unknown"  # ok, degraded (serving stale answers), down, unknown
    breaker: str = "closed"
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_latency_ms: float | None = None
    # While degraded: when the cached answer last served in the ERP's stead was read.
    stale_as_of: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


# --- the adapter --------------------------------------------------------------------------------


class ErpAdapter(ABC):
    """One ERP connection. Subclasses set `kind` and implement the `do_*` hooks."""

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        ttl: CacheTtl | None = None,
        cache: ErpCache | None = None,
        breaker: CircuitBreaker | None = None,
        observer: ErpObserver | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl or CacheTtl()
        self.cache: ErpCache = cache if cache is not None else MemoryCache()
        self.breaker = breaker or CircuitBreaker()
        self.observer: ErpObserver = observer or NoObserver()
        self.clock = clock
        self.health = ErpHealth()

    # --- what the rest of omnicrm calls ----------------------------------------------------------

    @final
    async def find_customer(
        self, query: CustomerQuery, *, fresh: bool = False
    ) -> Fresh[Customer | None]:
        """The ERP's customer for a contact (by reference first, then email, phone, tax id)."""
        if query.empty:
            return Fresh(None, self.clock())
        key = ("customer", *query.erp_refs, "|", *query.emails, "|", *query.phones, "|")
        return await self._call(
            "customer", (*key, *query.tax_ids), lambda: self.do_find_customer(query), fresh
        )

    @final
    async def list_orders(
        self, customer_ref: str, limit: int = 20, *, fresh: bool = False
    ) -> Fresh[list[OrderSummary]]:
        """A customer's orders, newest first."""
        return await self._call(
            "orders",
            ("orders", customer_ref, str(limit)),
            lambda: self.do_list_orders(customer_ref, limit),
            fresh,
        )

    @final
    async def get_order(self, number: str) -> Fresh[Order | None]:
        """An order by its number, with lines, shipments and invoices."""
        return await self._call("order", ("order", number), lambda: self.do_get_order(number))

    @final
    async def list_invoices(
        self, customer_ref: str, *, fresh: bool = False
    ) -> Fresh[list[Invoice]]:
        """A customer's invoices, newest first, with what is still due."""
        return await self._call(
            "invoices",
            ("invoices", customer_ref),
            lambda: self.do_list_invoices(customer_ref),
            fresh,
        )

    @final
    async def stock(self, sku: str) -> Fresh[Stock | None]:
        """A product's stock per warehouse."""
        return await self._call("stock", ("stock", sku), lambda: self.do_stock(sku))

    @final
    async def search_products(self, text: str, limit: int = 10) -> Fresh[list[Product]]:
        """Products whose name or SKU holds `text`."""
        return await self._call(
            "products",
            ("products", text.strip().lower(), str(limit)),
            lambda: self.do_search_products(text.strip(), limit),
        )

    @final
    async def check(self) -> str:
        """Try the connection and the credentials now (no cache, no breaker): a line saying
        what worked, or ErpError saying what did not."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                message = await self.do_check()
        except ErpError as exc:
            self._observe("check", exc.outcome, started)
            raise
        except Exception as exc:  # the network's (a dropped connection, a cut answer) or a timeout
            self._observe("check", "unavailable", started)
            raise ErpUnavailable(_describe(exc, self.timeout)) from None
        self._observe("check", "ok", started)
        return message

    # --- the hooks an ERP implements ------------------------------------------------------------

    @abstractmethod
    async def do_find_customer(self, query: CustomerQuery) -> Customer | None: ...

    @abstractmethod
    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]: ...

    @abstractmethod
    async def do_get_order(self, number: str) -> Order | None: ...

    @abstractmethod
    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]: ...

    @abstractmethod
    async def do_stock(self, sku: str) -> Stock | None: ...

    @abstractmethod
    async def do_search_products(self, text: str, limit: int) -> list[Product]: ...

    @abstractmethod
    async def do_check(self) -> str: ...

    async def close(self) -> None:  # noqa: B027 - an optional hook: most adapters hold nothing
        """Release what the adapter holds (an HTTP session); the default holds nothing."""

    # --- the policy ----------------------------------------------------------------------------

    @final
    async def _call(
        self,
        kind: str,
        key: tuple[str, ...],
        hook: Callable[[], Awaitable[T]],
        fresh: bool = False,
    ) -> Fresh[T]:
        """`fresh`: ask the ERP even if a cached answer is young (an operator's reload); the
        cached one still stands in when the ERP cannot answer."""
        now = self.clock()
        cached = self.cache.get(key)
        if not fresh and cached is not None and now - cached.stored_at < self.ttl.of(kind):
            return Fresh(cached.value, cached.stored_at)
        usable = (
            cached if cached is not None and now - cached.stored_at < self.ttl.keep_stale else None
        )
        if not self.breaker.allow():
            self._observe(kind, "circuit_open", time.perf_counter())
            return self._stale_or_raise(
                usable, f"the {self.kind} ERP is not asked for a while: it kept failing"
            )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                value: Any = await hook()
        except ErpNotFound:
            value = None
        except ErpAuthError as exc:
            self._failed(kind, exc, started)
            return self._stale_or_raise(usable, str(exc), ErpAuthError)
        except Exception as exc:  # the ERP's, the network's or a timeout: never the caller's
            self._failed(kind, exc, started)
            return self._stale_or_raise(usable, _describe(exc, self.timeout))
        self.breaker.succeeded()
        stored = self.clock()
        self.cache.put(key, Cached(value, stored))
        self._observe(kind, "ok", started)
        self.health.state = "ok"
        self.health.stale_as_of = None
        self.health.last_success_at = stored
        self.health.breaker = self.breaker.state
        return Fresh(value, stored)

    def _failed(self, kind: str, exc: BaseException, started: float) -> None:
        self.breaker.failed()
        outcome = exc.outcome if isinstance(exc, ErpError) else "unavailable"
        self._observe(kind, outcome, started)
        self.health.last_error = _describe(exc, self.timeout)
        self.health.last_error_at = self.clock()
        self.health.breaker = self.breaker.state
        log.warning(
            "ERP call failed",
            extra=log_fields(erp=self.kind, operation=kind, error=self.health.last_error),
        )

    def _stale_or_raise(
        self, usable: Cached | None, why: str, error: type[ErpError] = ErpUnavailable
    ) -> Fresh[Any]:
        if usable is not None:
            self.health.state = "degraded"
            self.health.stale_as_of = usable.stored_at
            return Fresh(usable.value, usable.stored_at, stale=True)
        self.health.state = "down"
        self.health.stale_as_of = None
        raise error(why)

    def _observe(self, kind: str, outcome: str, started: float) -> None:
        seconds = max(time.perf_counter() - started, 0.0)
        if outcome == "ok":
            self.health.last_latency_ms = round(seconds * 1000, 1)
        self.observer.observe(self.kind, kind, outcome, seconds)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ErpError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:500]


# --- kinds of ERP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErpContext:
    """What an adapter may use besides its settings (the embedded ERP reads omnicrm's own
    database; the others ignore it)."""

    sessions: SessionFactory | None = None


@dataclass(frozen=True)
class ErpKind:
    """One kind of ERP as the configuration sees it (`omnicrm erp set KIND ...`): its settings
    model, which settings are secret (stored encrypted, never shown), and how to build its
    adapter from validated settings (`build(settings, context, **policy)`, `policy` being the
    `ErpAdapter` keyword arguments: timeout, ttl, cache, breaker, observer, clock)."""

    name: str
    label: str
    settings_model: type[BaseModel]
    secret_fields: frozenset[str]
    build: Callable[..., ErpAdapter]
