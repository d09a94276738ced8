"""The policy every ERP adapter shares (erp_bridge/base.py): timeout, cache with stale answers
while the ERP is down, circuit breaker, error mapping, metrics. An adapter whose ERP hangs,
fails and recovers on command; time from a manual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from erp_bridge.base import (
    CacheTtl,
    CircuitBreaker,
    ErpAdapter,
    ErpAuthError,
    ErpNotFound,
    ErpUnavailable,
)
from erp_bridge.models import (
    Customer,
    CustomerQuery,
    Invoice,
    Money,
    Order,
    OrderStatus,
    OrderSummary,
    Product,
    Stock,
    StockLevel,
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START
        self.seconds = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


class Observed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def observe(self, kind: str, operation: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((kind, operation, outcome))


class FlakyErp(ErpAdapter):
    """An ERP whose mood a test sets: "up", "down" (connection refused), "hang", "auth"."""

    kind = "flaky"

    def __init__(self, clock: Clock, **options: object) -> None:
        self.mood = "up"
        self.asked = 0
        self.observed = Observed()
        super().__init__(
            timeout=0.05,
            clock=clock,
            breaker=CircuitBreaker(failures=3, cooldown=30, monotonic=clock.monotonic),
            observer=self.observed,
            **options,  # type: ignore[arg-type]
        )

    async def _answer(self) -> None:
        self.asked += 1
        if self.mood == "down":
            raise ConnectionRefusedError("connection refused")
        if self.mood == "hang":
            await asyncio.sleep(10)
        if self.mood == "auth":
            raise ErpAuthError("the API key was refused")

    async def do_find_customer(self, query: CustomerQuery) -> Customer | None:
        await self._answer()
        if "nobody@example.com" in query.emails:
            return None
        return Customer(ref="C-1", name="Kim Lee", email=query.emails[0])

    async def do_list_orders(self, customer_ref: str, limit: int) -> list[OrderSummary]:
        await self._answer()
        return [OrderSummary(ref="1", number="SO1", status=OrderStatus.SHIPPED)][:limit]

    async def do_get_order(self, number: str) -> Order | None:
        await self._answer()
        if number != "SO1":
            raise ErpNotFound(number)
        return Order(
            ref="1",
            number="SO1",
            status=OrderStatus.SHIPPED,
            total=Money(amount=Decimal("12.50"), currency="EUR"),
        )

    async def do_list_invoices(self, customer_ref: str) -> list[Invoice]:
        await self._answer()
        return []

    async def do_stock(self, sku: str) -> Stock | None:
        await self._answer()
        level = StockLevel(
            warehouse="WH", on_hand=Decimal(5), reserved=Decimal(2), available=Decimal(3)
        )
        return Stock(sku=sku, levels=(level,))

    async def do_search_products(self, text: str, limit: int) -> list[Product]:
        await self._answer()
        return [Product(ref="P1", sku="CHAIR-1", name="Desk chair")]

    async def do_check(self) -> str:
        await self._answer()
        return "signed in"


KIM = CustomerQuery(emails=("kim@example.com",))


async def test_answers_are_cached_for_their_kinds_time_and_then_asked_again() -> None:
    clock = Clock()
    erp = FlakyErp(clock, ttl=CacheTtl(stock=timedelta(seconds=60)))
    first = await erp.stock("CHAIR-1")
    assert first.value is not None
    assert first.value.available == Decimal(3)
    assert (first.as_of, first.stale) == (START, False)
    clock.tick(59)
    assert (await erp.stock("CHAIR-1")).as_of == START  # from the cache
    assert erp.asked == 1
    clock.tick(2)
    again = await erp.stock("CHAIR-1")
    assert again.as_of == clock.now
    assert erp.asked == 2


async def test_a_down_erp_serves_the_last_answer_as_stale_with_its_time() -> None:
    clock = Clock()
    erp = FlakyErp(clock)
    await erp.find_customer(KIM)
    clock.tick(3600)  # past the customer's TTL
    erp.mood = "down"
    stale = await erp.find_customer(KIM)
    assert stale.value is not None
    assert stale.value.name == "Kim Lee"
    assert (stale.stale, stale.as_of) == (True, START)
    assert erp.health.state == "degraded"
    assert "connection refused" in (erp.health.last_error or "")
    # Nothing cached to fall back on: a clear error, never the network's exception.
    with pytest.raises(ErpUnavailable, match="ConnectionRefusedError"):
        await erp.stock("DESK-9")
    assert erp.health.state == "down"


async def test_an_erp_that_hangs_is_given_up_on_at_the_timeout() -> None:
    erp = FlakyErp(Clock())
    erp.mood = "hang"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ErpUnavailable, match=r"no answer within 0\.05 s"):
        await erp.get_order("SO1")
    assert loop.time() - started < 5  # the timeout, not the ERP, decided


async def test_the_breaker_stops_asking_a_failing_erp_then_tries_once_and_recovers() -> None:
    clock = Clock()
    erp = FlakyErp(clock)
    erp.mood = "down"
    for _ in range(3):
        with pytest.raises(ErpUnavailable):
            await erp.list_orders("C-1")
    assert erp.asked == 3
    assert erp.breaker.state == "open"
    with pytest.raises(ErpUnavailable, match="not asked for a while"):
        await erp.list_orders("C-1")
    assert erp.asked == 3  # not asked while open
    clock.tick(31)
    assert erp.breaker.state == "half_open"
    with pytest.raises(ErpUnavailable):
        await erp.list_orders("C-1")  # the one trial fails: open again
    assert (erp.asked, erp.breaker.state) == (4, "open")
    clock.tick(31)
    erp.mood = "up"
    orders = await erp.list_orders("C-1")
    assert [order.number for order in orders.value] == ["SO1"]
    assert (erp.breaker.state, erp.health.state) == ("closed", "ok")
    outcomes = [outcome for _, operation, outcome in erp.observed.calls if operation == "orders"]
    assert outcomes == ["unavailable"] * 3 + ["circuit_open", "unavailable", "ok"]


async def test_a_missing_record_is_none_and_cached_and_refused_credentials_say_so() -> None:
    erp = FlakyErp(Clock())
    assert (await erp.get_order("SO404")).value is None
    assert (await erp.get_order("SO404")).value is None
    assert erp.asked == 1  # a wrong number does not reach the ERP twice
    assert (await erp.find_customer(CustomerQuery())).value is None  # nothing to look by
    assert erp.asked == 1
    erp.mood = "auth"
    with pytest.raises(ErpAuthError, match="API key was refused"):
        await erp.search_products("chair")
    with pytest.raises(ErpAuthError):
        await erp.check()
    erp.mood = "up"
    assert await erp.check() == "signed in"


async def test_a_reload_asks_the_erp_now_and_falls_back_to_the_cache_when_it_is_down() -> None:
    clock = Clock()
    erp = FlakyErp(clock)
    await erp.list_orders("C-1")
    again = await erp.list_orders("C-1", fresh=True)  # young in the cache, asked anyway
    assert erp.asked == 2
    assert again.stale is False
    erp.mood = "down"
    fallback = await erp.list_orders("C-1", fresh=True)
    assert (fallback.stale, [order.number for order in fallback.value]) == (True, ["SO1"])


class DroppingServer:
    """An HTTP server that misbehaves as a failing ERP's proxy does, over a real socket:
    `drop` closes the connection after reading the request (no answer at all), `cut` sends
    headers promising 500 bytes and closes after 12, `bad_gateway` answers 502."""

    def __init__(self) -> None:
        self.how = "drop"
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/api"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if self.how == "cut":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 500\r\n\r\n{"result": ['
            )
            await writer.drain()
        elif self.how == "bad_gateway":
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
        writer.close()


class HttpErp(FlakyErp):
    """An ERP asked over HTTP with aiohttp, as the real adapters are, whose errors (aiohttp's
    own, neither OSError nor TimeoutError) it lets escape."""

    kind = "http"

    def __init__(self, url: str) -> None:
        super().__init__(Clock())
        self.timeout = 5.0
        self.url = url

    async def _answer(self) -> None:
        self.asked += 1
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url, raise_for_status=True) as response,
        ):
            await response.json()


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("drop", "ServerDisconnectedError"),
        ("cut", "ClientPayloadError"),
        ("bad_gateway", "ClientResponseError: 502"),
    ],
)
async def test_a_check_against_an_erp_that_drops_the_connection_is_unavailable_and_observed(
    how: str, error: str
) -> None:
    server = DroppingServer()
    server.how = how
    erp = HttpErp(await server.start())
    try:
        with pytest.raises(ErpUnavailable, match=error):
            await erp.check()
        # The calls the console makes say the same, and so does the observer for both.
        with pytest.raises(ErpUnavailable, match=error):
            await erp.list_orders("C-1")
    finally:
        await server.close()
    assert erp.asked == 2
    assert erp.observed.calls == [
        ("http", "check", "unavailable"),
        ("http", "orders", "unavailable"),
    ]
