"""One supervisor for every channel's pollers: a test-only polling channel (a `CursorPoller`
over an in-memory provider) gets its pollers, cursor, backoff, health, decrypted secrets and
metrics from channels/base.py and channels/pollers.py with no code of its own for them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import (
    Channel,
    ChannelServices,
    CursorPoller,
    Parsed,
    PollingAdapter,
    PollOptions,
    Unsupported,
)
from channels.pollers import PollerSupervisor
from channels.registry import ChannelRegistry
from core.audit import CLI
from core.channel_accounts import (
    AccountView,
    create_account,
    get_account,
    health_of,
    load_cursor_state,
    update_account,
)
from core.channels import ChannelFacts
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.events import EventBus
from core.identity import Address
from core.ingest import InboundEvent, IngestPolicy, ingest
from core.models import ChannelAccount, IdentityKind, Interaction
from core.settings import Settings
from core.storage import MemoryStore
from tests.fake_channel import FakeSms
from tests.waiting import eventually
from web.metrics import Metrics

pytestmark = pytest.mark.both_databases  # tests/conftest.py

CIPHER = CredentialCipher("the poller tests' credentials key")
FAST = PollOptions(
    poll_seconds=0.05,
    backoff_base_seconds=0.05,
    backoff_cap_seconds=0.2,
    lock_wait_seconds=0.1,
    success_record_seconds=0,
)


@dataclass
class Feed:
    """The provider of one account: items after an offset, a token it checks, outages."""

    token: str
    items: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    fetches: int = 0

    def add(self, text: str, kind: str = "message") -> None:
        self.items.append({"offset": len(self.items) + 1, "text": text, "type": kind})


FEEDS: dict[str, Feed] = {}


class FeedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feed: str
    token: str


class FeedPoller(CursorPoller[dict[str, Any]]):
    async def do_fetch(
        self, cursor: Mapping[str, Any] | None
    ) -> tuple[Sequence[dict[str, Any]], Sequence[Mapping[str, Any]]]:
        feed = FEEDS[self.account.setting("feed")]
        feed.fetches += 1
        if self.account.setting("token") != feed.token:
            raise PermissionError("the provider refused the token")
        if feed.failures:
            feed.failures -= 1
            raise ConnectionError("the provider is down")
        after = int(cursor["offset"]) if cursor else 0
        items = [item for item in feed.items if item["offset"] > after][:2]
        return items, [{"offset": item["offset"]} for item in items]

    def do_parse(self, item: dict[str, Any]) -> Parsed[Any] | Unsupported:
        if item["type"] != "message":
            return Unsupported(f"{item['type']} carries no message")
        return Parsed(
            [
                InboundEvent(
                    channel="feed",
                    external_id=f"{self.account.name}:{item['offset']}",
                    addresses=[Address(IdentityKind.PHONE, f"+1555010{item['offset']:04d}")],
                    text=item["text"],
                    queue_id=self.account.queue_id,
                )
            ]
        )

    async def do_store(self, session: AsyncSession, parsed: Parsed[Any]) -> None:
        for event in parsed.items:
            await ingest(session, event, self.services.policy)


class FeedChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name="feed", label="Feed", icon="sms", identity_kind=IdentityKind.PHONE
    )
    settings_model: ClassVar[type[BaseModel] | None] = FeedSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    def poller(self, account: AccountView, services: ChannelServices) -> PollingAdapter | None:
        return FeedPoller(account, services, FAST, secret_fields=self.secret_fields)


@pytest.fixture(autouse=True)
def feeds() -> dict[str, Feed]:
    FEEDS.clear()
    return FEEDS


@pytest.fixture
def supervisor(sessions: SessionFactory, bus: EventBus) -> PollerSupervisor:
    services = ChannelServices(
        sessions=sessions,
        bus=bus,
        store=MemoryStore(),
        policy=IngestPolicy(),
        cipher=CIPHER,
        settings=Settings(secret_key="the poller tests' secret key"),
    )
    return PollerSupervisor(ChannelRegistry([FeedChannel(), FakeSms()]), services)


async def add_feed(
    sessions: SessionFactory, name: str, *, cipher: CredentialCipher = CIPHER, token: str = ""
) -> int:
    FEEDS[name] = feed = Feed(token=f"token-of-{name}")
    async with sessions() as session, session.begin():
        row = await create_account(
            session,
            CLI,
            channel="feed",
            name=name,
            settings={"feed": name, "token": token or feed.token},
            secret_fields={"token"},
            cipher=cipher,
        )
        return row.id


async def texts(sessions: SessionFactory) -> list[str]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Interaction.text)
                .where(Interaction.channel == "feed")
                .order_by(Interaction.id)
            )
        )


async def account_of(sessions: SessionFactory, account_id: int) -> ChannelAccount:
    async with sessions() as session:
        return await get_account(session, account_id)


async def change(sessions: SessionFactory, account_id: int, **changes: Any) -> None:
    """As the API changes an account (it emits channel_account.updated)."""
    async with sessions() as session, session.begin():
        row = await get_account(session, account_id)
        await update_account(
            session, CLI, row, secret_fields={"token"}, cipher=CIPHER, **{"settings": {}, **changes}
        )


async def test_one_supervisor_runs_each_accounts_poller_and_counts_by_account(
    sessions: SessionFactory, supervisor: PollerSupervisor
) -> None:
    first, second = await add_feed(sessions, "north"), await add_feed(sessions, "south")
    async with sessions() as session, session.begin():
        # A channel without pollers has its accounts, but no poller.
        await create_account(
            session, CLI, channel="fakesms", name="sms", settings={"token": "t" * 8},
            secret_fields={"token"}, cipher=CIPHER,
        )  # fmt: skip
        # An account of a channel this process does not run is left alone.
        session.add(ChannelAccount(channel="telegram", name="bot", settings={}))
    for text in ("one", "two", "three"):
        FEEDS["north"].add(text)
    FEEDS["north"].add("", kind="typing")
    FEEDS["south"].add("four")
    metrics = Metrics()
    metrics.watch_pollers(supervisor)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    await supervisor.start()
    try:
        assert sorted(supervisor.pollers()) == sorted([first, second])

        async def all_in() -> bool:
            return len(await texts(sessions)) == 4

        await eventually(all_in, "every item to be stored")

        async def typing_counted() -> bool:
            counted = sample(
                "omnicrm_channel_items_total",
                channel="feed",
                account="north",
                outcome="unsupported",
            )
            return counted == 1

        await eventually(typing_counted, "the typing item to be counted")
        assert sorted(await texts(sessions)) == ["four", "one", "three", "two"]
        labels = {"channel": "feed", "account": "north"}
        assert sample("omnicrm_channel_items_total", **labels, outcome="stored") == 3
        assert sample("omnicrm_channel_poller_failing", **labels) == 0
        assert sample("omnicrm_channel_poller_errors_total", **labels) == 0
        south = {"channel": "feed", "account": "south"}
        assert sample("omnicrm_channel_items_total", **south, outcome="stored") == 1
        # The cursor is committed with the items it covers, under the account's key.
        async with sessions() as session:
            assert await load_cursor_state(session, "feed", first) == {"offset": 4}
            assert await load_cursor_state(session, "feed", second) == {"offset": 1}
        assert health_of(await account_of(sessions, first)) == "ok"
    finally:
        await supervisor.stop()
    assert supervisor.pollers() == {}


async def test_a_failing_provider_is_recorded_retried_with_backoff_and_cleared(
    sessions: SessionFactory, supervisor: PollerSupervisor
) -> None:
    account_id = await add_feed(sessions, "flaky")
    FEEDS["flaky"].failures = 3
    FEEDS["flaky"].add("after the outage")
    await supervisor.start()
    try:
        poller = supervisor.pollers()[account_id]

        async def failed_thrice() -> bool:
            return poller.status.errors == 3

        await eventually(failed_thrice, "three failures")
        recorded = await account_of(sessions, account_id)
        assert recorded.last_error == "ConnectionError: the provider is down"

        async def recovered() -> bool:
            return await texts(sessions) == ["after the outage"]

        await eventually(recovered, "the item after the outage")
        await eventually(lambda: _health_is(sessions, account_id, "ok"), "the error to be cleared")
        assert poller.status.failing is False
        # One fetch per attempt: failures wait (backoff) instead of hammering the provider.
        assert FEEDS["flaky"].fetches >= 4
    finally:
        await supervisor.stop()


async def _health_is(sessions: SessionFactory, account_id: int, health: str) -> bool:
    return health_of(await account_of(sessions, account_id)) == health


async def test_a_secret_no_key_reads_is_the_accounts_error_until_it_is_set_again(
    sessions: SessionFactory, supervisor: PollerSupervisor
) -> None:
    account_id = await add_feed(sessions, "locked", cipher=CredentialCipher("another key!!"))
    FEEDS["locked"].add("behind the lock")
    await supervisor.start()
    try:

        async def reported() -> bool:
            error = (await account_of(sessions, account_id)).last_error or ""
            return "cannot decrypt the token of feed account 'locked'" in error

        await eventually(reported, "the key problem to be recorded")
        assert FEEDS["locked"].fetches == 0  # nothing reached the provider
        assert not supervisor.pollers()[account_id].status.counters
        await change(sessions, account_id, settings={"token": FEEDS["locked"].token})

        async def imported() -> bool:
            return await texts(sessions) == ["behind the lock"]

        await eventually(imported, "the item once the secret is set again")
    finally:
        await supervisor.stop()


async def test_disabling_stops_the_poller_and_enabling_resumes_from_the_cursor(
    sessions: SessionFactory, supervisor: PollerSupervisor
) -> None:
    account_id = await add_feed(sessions, "paused")
    FEEDS["paused"].add("before")
    await supervisor.start()
    try:
        await eventually(lambda: _texts_are(sessions, ["before"]), "the first item")
        await change(sessions, account_id, enabled=False)

        async def stopped() -> bool:
            return account_id not in supervisor.pollers()

        await eventually(stopped, "the poller to stop")
        FEEDS["paused"].add("while disabled")
        await asyncio.sleep(0.2)
        assert await texts(sessions) == ["before"]

        await change(sessions, account_id, enabled=True)
        await eventually(
            lambda: _texts_are(sessions, ["before", "while disabled"]), "the item kept waiting"
        )
        assert supervisor.pollers()[account_id].status.counted("stored") == 1
    finally:
        await supervisor.stop()


async def _texts_are(sessions: SessionFactory, expected: list[str]) -> bool:
    return await texts(sessions) == expected
