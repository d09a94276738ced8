"""Customers see their status themselves (web/routes_status.py, core/status_links.py): a
signed, expiring link made by an operator opens a page without sign-in, in the customer's
language, with the request's state and an order's status from the ERP; a link that is not
valid, or no longer, says nothing of the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from core import clock
from core.audit import CLI
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import AuditEntry, Contact, IdentityKind, Role
from core.settings import Settings
from core.status_links import (
    Rejected,
    StatusLink,
    expiry,
    key_from_secret,
    make_token,
    read_token,
)
from erp_bridge.base import ErpUnavailable
from erp_bridge.embedded_data import OrderData, save_order
from tests.conftest import User, UserFactory
from web import routes_status
from web.keys import ERP

Client = TestClient[Any, Any]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PUBLIC_URL = "https://crm.example.com/help"
SECRET = "test-secret-key"
EMAIL = "olga.petrova@example.ru"
CUSTOMER_TEXT = "Where is my order 10330? The box for 10301 came damaged."
NOTE = "Internal: customer is on the VIP list, be quick"
REPLY = "Dear Olga, we are checking with the warehouse"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        log_json=False,
        attachments_dir=str(tmp_path / "attachments"),
        public_url=PUBLIC_URL,
    )


async def customer_with_an_order(
    sessions: SessionFactory, *, language: str | None = "ru", texts: tuple[str, ...] = ()
) -> tuple[int, int]:
    """Olga's conversation (email) about order 10330, which is shipped; (conversation id,
    contact id)."""
    now = clock.utcnow()
    async with sessions() as session, session.begin():
        arrived = None
        for index, text in enumerate(texts or (CUSTOMER_TEXT,)):
            arrived = await ingest(
                session,
                InboundEvent(
                    channel="email",
                    external_id=f"<olga-{index}@example.ru>",
                    addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                    display_name="Olga Petrova",
                    subject="My order",
                    text=text,
                    occurred_at=now - timedelta(hours=2) + timedelta(minutes=index),
                ),
            )
        assert arrived is not None
        await session.execute(
            update(Contact).where(Contact.id == arrived.contact_id).values(language=language)
        )
        await save_order(
            session,
            CLI,
            OrderData.model_validate(
                {
                    "number": "10330",
                    "customer": EMAIL,
                    "ordered_at": (now - timedelta(days=3)).isoformat(),
                    "status": "shipped",
                    "currency": "EUR",
                    "tracking_number": "TRK-77",
                    "tracking_url": "https://track.example/TRK-77",
                    "lines": [{"name": "Desk chair", "quantity": "1", "total": "199.00"}],
                }
            ),
        )
    return arrived.conversation_id, arrived.contact_id


async def supervisor_with_history(make_user: UserFactory, conversation_id: int) -> User:
    """A supervisor who wrote a note and answered the customer, then waits for them."""
    boss = await make_user(Role.SUPERVISOR)
    base = f"/api/v1/conversations/{conversation_id}"
    assert (await boss.post(f"{base}/notes", json={"text": NOTE})).status == 201
    assert (await boss.post(f"{base}/reply", json={"text": REPLY})).status == 201
    assert (await boss.post(f"{base}/status", json={"status": "pending"})).status == 200
    return boss


async def make_link(user: User, conversation_id: int, **body: Any) -> dict[str, Any]:
    response = await user.post(f"/api/v1/conversations/{conversation_id}/status-link", json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


def path_of(url: str) -> str:
    """The link's path on this server (it is written under public_url)."""
    assert url.startswith(f"{PUBLIC_URL}/status/")
    return urlsplit(url).path.removeprefix("/help")


def token_of(url: str) -> str:
    return path_of(url).removeprefix("/status/")


async def open_page(client: Client, path: str, language: str = "en") -> tuple[int, str, Any]:
    response = await client.get(path, headers={"Accept": BROWSER, "Accept-Language": language})
    assert response.content_type == "text/html"
    return response.status, await response.text(), response.headers


def assert_nothing_of_the_conversation(page: str, conversation_id: int) -> None:
    for secret in ("10330", "10301", "TRK-77", "Olga", NOTE, REPLY, CUSTOMER_TEXT, "My order"):
        assert secret not in page
    assert f"#{conversation_id}" not in page
    assert f"№ {conversation_id}" not in page


# --- the page -------------------------------------------------------------------------------


async def test_a_link_made_through_the_api_opens_the_page_in_the_customers_language(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions)
    boss = await supervisor_with_history(make_user, conversation_id)
    link = await make_link(boss, conversation_id, order_number=" 10330 ")
    expires_at = datetime.fromisoformat(link["expires_at"])
    assert timedelta(days=29, hours=23) < expires_at - clock.utcnow() <= timedelta(days=30)

    # The customer's browser asks for English; their contact says Russian.
    status, page, headers = await open_page(client, path_of(link["url"]), "en-US,en")
    assert status == 200
    assert '<html lang="ru">' in page
    assert headers["Content-Language"] == "ru"
    assert f"Ваше обращение № {conversation_id}" in page
    assert "Ждём вашего ответа" in page  # pending: waiting for the customer
    assert "Последний ответ" in page
    assert "Ответа пока нет" not in page
    assert "Заказ 10330" in page
    assert "Отправлен" in page
    assert '<a href="https://track.example/TRK-77" rel="noopener noreferrer">TRK-77</a>' in page
    assert "Статус заказа на " in page
    assert "Ссылка действует до " in page
    # Never what was written: not the customer's words, the note, the answer, the subject.
    for written in (CUSTOMER_TEXT, "10301", NOTE, REPLY, "My order", "Desk chair", EMAIL):
        assert written not in page
    # A page without scripts that nothing else may frame, cache or be referred from.
    assert "<script" not in page
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"

    # Without sign-in, a machine gets the same page; ?lang= chooses another language.
    status, german, _ = await open_page(client, path_of(link["url"]) + "?lang=de")
    assert status == 200
    assert "Wir warten auf Ihre Antwort" in german
    assert "Versandt" in german

    async with sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "conversation.status_link")
        )
    assert entry is not None
    assert entry.entity_id == str(conversation_id)
    assert entry.actor_id == boss.operator.id
    assert entry.details["order_number"] == "10330"


async def test_without_an_order_the_page_shows_the_request_alone(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions, language=None)
    boss = await make_user(Role.SUPERVISOR)
    link = await make_link(boss, conversation_id)
    assert read_token(SECRET, token_of(link["url"])) == StatusLink(
        conversation_id, None, datetime.fromisoformat(link["expires_at"])
    )
    status, page, _ = await open_page(client, path_of(link["url"]), "de-AT,de;q=0.9")
    assert status == 200
    assert '<html lang="de">' in page  # no language on the contact: the browser's
    assert "Offen: Wir kümmern uns darum" in page
    assert "Noch nicht beantwortet" in page
    assert "Bestellung" not in page
    assert "10330" not in page


async def test_an_order_of_another_customer_is_not_shown(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions, language="en")
    async with sessions() as session, session.begin():
        await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<else-1@example.com>",
                addresses=[Address(IdentityKind.EMAIL, "someone.else@example.com")],
                text="Hello",
            ),
        )
        await save_order(
            session,
            CLI,
            OrderData.model_validate(
                {
                    "number": "20001",
                    "customer": "someone.else@example.com",
                    "ordered_at": clock.utcnow().isoformat(),
                    "status": "shipped",
                    "currency": "EUR",
                }
            ),
        )
    boss = await make_user(Role.SUPERVISOR)
    link = await make_link(boss, conversation_id, order_number="20001")
    status, page, _ = await open_page(client, path_of(link["url"]))
    assert status == 200
    assert "We cannot show this order here." in page
    assert "Shipped" not in page


async def test_the_page_answers_when_the_erp_is_down(
    app: web.Application, client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions, language="en")
    boss = await supervisor_with_history(make_user, conversation_id)
    link = await make_link(boss, conversation_id, order_number="10330")
    adapter = await app[ERP].adapter()
    assert adapter is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ErpUnavailable("connection refused")

    adapter.do_get_order = down  # type: ignore[method-assign]
    adapter.do_find_customer = down  # type: ignore[method-assign]
    adapter.do_list_orders = down  # type: ignore[method-assign]
    adapter.cache.clear()
    status, page, _ = await open_page(client, path_of(link["url"]))
    assert status == 200
    assert "Waiting for your answer" in page
    assert "Order 10330" in page
    assert "The order status is not available right now." in page
    assert "connection refused" not in page


async def test_a_stale_answer_says_as_of_when(
    app: web.Application, client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions, language="en")
    boss = await make_user(Role.SUPERVISOR)
    link = await make_link(boss, conversation_id, order_number="10330")
    status, page, _ = await open_page(client, path_of(link["url"]))
    assert status == 200
    assert "Order status as of " in page
    adapter = await app[ERP].adapter()
    assert adapter is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ErpUnavailable("connection refused")

    adapter.do_get_order = down  # type: ignore[method-assign]
    adapter.do_find_customer = down  # type: ignore[method-assign]
    an_hour_ago = clock.utcnow() - timedelta(hours=1)
    for key in list(adapter.cache._entries):  # type: ignore[attr-defined]
        entry = adapter.cache.get(key)
        assert entry is not None
        adapter.cache.put(key, type(entry)(entry.value, an_hour_ago))
    status, page, _ = await open_page(client, path_of(link["url"]))
    assert status == 200
    assert "This is the last status we know, as of " in page
    assert "Shipped" in page


# --- links that do not open ----------------------------------------------------------------


async def test_tampered_foreign_and_expired_links_say_nothing(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions)
    boss = await supervisor_with_history(make_user, conversation_id)
    link = await make_link(boss, conversation_id, order_number="10330")
    token = token_of(link["url"])

    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[2] ^= 1  # another conversation, or another expiry: the signature no longer fits
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    foreign = make_token("another-servers-key", conversation_id, "10330", expiry(30))
    for bad in (tampered, foreign, token[:-2], "x", token + "A"):
        status, page, headers = await open_page(client, f"/status/{bad}", "ru")
        assert status == 404, bad
        assert "Эта ссылка не работает" in page
        assert_nothing_of_the_conversation(page, conversation_id)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        # A script gets the API's JSON, just as empty.
        response = await client.get(f"/status/{bad}")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"

    later = clock.ManualClock(clock.utcnow() + timedelta(days=30, seconds=1))
    with clock.using(later):
        status, page, _ = await open_page(client, path_of(link["url"]), "en")
        machine = await client.get(path_of(link["url"]))
    assert status == 410
    assert "This link has expired" in page
    assert "ask us for a new one" in page
    assert_nothing_of_the_conversation(page, conversation_id)
    assert machine.status == 404
    # Still good a moment before it expires.
    with clock.using(clock.ManualClock(clock.utcnow() + timedelta(days=29))):
        status, page, _ = await open_page(client, path_of(link["url"]), "en")
    assert status == 200


async def test_a_link_of_an_erased_customer_opens_nothing(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, contact_id = await customer_with_an_order(sessions)
    boss = await make_user(Role.SUPERVISOR)
    link = await make_link(boss, conversation_id, order_number="10330")
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(erased_at=clock.utcnow())
        )
    status, page, _ = await open_page(client, path_of(link["url"]), "en")
    assert status == 404
    assert_nothing_of_the_conversation(page, conversation_id)


async def test_the_page_is_rate_limited_per_address(
    client: Client, make_user: UserFactory, sessions: SessionFactory, monkeypatch: Any
) -> None:
    monkeypatch.setattr(routes_status, "PAGES_PER_MINUTE", 2)
    conversation_id, _ = await customer_with_an_order(sessions)
    boss = await make_user(Role.SUPERVISOR)
    path = path_of((await make_link(boss, conversation_id))["url"])
    assert [(await client.get(path)).status for _ in range(2)] == [200, 200]
    limited = await client.get(path, headers={"Accept": BROWSER})
    assert limited.status == 429
    assert limited.headers["Retry-After"]
    assert limited.content_type == "text/html"


# --- who may make links -----------------------------------------------------------------------


async def test_an_operator_who_may_not_see_the_conversation_gets_a_404(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(sessions)
    outsider = await make_user(Role.OPERATOR)  # in no queue, assigned nothing
    for target in (conversation_id, conversation_id + 1000):
        response = await outsider.post(
            f"/api/v1/conversations/{target}/status-link", json={"order_number": "10330"}
        )
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with sessions() as session:
        made = await session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "conversation.status_link")
        )
    assert made is None
    boss = await make_user(Role.SUPERVISOR)
    bad = await boss.post(
        f"/api/v1/conversations/{conversation_id}/status-link", json={"order_number": "1\n2"}
    )
    assert bad.status == 400
    assert "order_number" in (await bad.json())["error"]["fields"]


# --- the placeholder ----------------------------------------------------------------------------


async def test_the_placeholder_puts_a_link_with_the_latest_order_number_into_a_reply(
    client: Client, make_user: UserFactory, sessions: SessionFactory
) -> None:
    conversation_id, _ = await customer_with_an_order(
        sessions,
        language="en",
        texts=("My order 10301 arrived, thanks.", "And 10299? No wait, I mean 10330, where is it?"),
    )
    boss = await make_user(Role.SUPERVISOR)
    created = await boss.post(
        "/api/v1/canned-responses",
        json={
            "title": "Status",
            "body": "Hi {{contact.first_name}}, follow your request here: {{ status.link }}",
            "shared": True,
        },
    )
    assert created.status == 201, await created.text()
    canned_id = (await created.json())["id"]
    rendered = await boss.post(
        f"/api/v1/conversations/{conversation_id}/canned-responses/{canned_id}/render"
    )
    assert rendered.status == 200
    text = (await rendered.json())["text"]
    prefix = f"Hi Olga, follow your request here: {PUBLIC_URL}/status/"
    assert text.startswith(prefix)
    link = read_token(SECRET, text.removeprefix(prefix))
    assert isinstance(link, StatusLink)
    assert (link.conversation_id, link.order_number) == (conversation_id, "10330")
    status, page, _ = await open_page(client, f"/status/{text.removeprefix(prefix)}")
    assert status == 200
    assert "Order 10330" in page
    assert "Shipped" in page


# --- the token (no database; the module's parameter is only carried along) -------------------


@pytest.mark.usefixtures("database_url")
def test_a_token_is_compact_and_says_what_it_was_made_with() -> None:
    expires_at = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    token = make_token(SECRET, 42, "SO-10330", expires_at)
    assert len(token) <= 50
    assert token.isascii()
    assert all(char.isalnum() or char in "-_" for char in token)
    before = expires_at - timedelta(seconds=1)
    assert read_token(SECRET, token, before) == StatusLink(42, "SO-10330", expires_at)
    assert read_token(SECRET, token, expires_at) is Rejected.EXPIRED
    assert read_token("another key", token, before) is Rejected.BAD_SIGNATURE
    unicode = make_token(SECRET, 2**63 - 1, "Заказ №7", expires_at)
    assert read_token(SECRET, unicode, before) == StatusLink(2**63 - 1, "Заказ №7", expires_at)
    assert read_token(SECRET, make_token(SECRET, 7, "  ", expires_at), before) == StatusLink(
        7, None, expires_at
    )


@pytest.mark.parametrize(
    "token",
    ["", "=", "a b", "abc=", "Zm9v", "A" * 601, "AQ", "AQEB", "é", "AQ+/"],
)
@pytest.mark.usefixtures("database_url")
def test_malformed_tokens_are_said_to_be(token: str) -> None:
    assert read_token(SECRET, token) is Rejected.MALFORMED


@pytest.mark.usefixtures("database_url")
def test_a_signed_payload_that_is_not_one_is_malformed() -> None:
    """The checks after the signature: a version this server does not know, a number spelt
    with a redundant byte, a conversation 0 (signed with the right key, as if by a bug)."""
    key = key_from_secret(SECRET)

    def signed(body: bytes) -> str:
        mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    far = (2_000_000_000).to_bytes(5, "little")  # any later 5 bytes: the varint fails first
    assert read_token(SECRET, signed(b"\x02\x01\x01")) is Rejected.MALFORMED
    assert read_token(SECRET, signed(b"\x01\x81\x00" + b"\x01")) is Rejected.MALFORMED
    assert read_token(SECRET, signed(b"\x01\x00" + far)) is Rejected.MALFORMED
    assert read_token(SECRET, signed(b"\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")) is (
        Rejected.MALFORMED
    )
    assert read_token(SECRET, signed(b"\x01\x01\x01\xff")) is Rejected.MALFORMED  # not UTF-8


@pytest.mark.usefixtures("database_url")
def test_making_a_token_checks_its_values() -> None:
    at = datetime(2031, 1, 1, tzinfo=UTC)
    for conversation_id, number, when in (
        (0, None, at),
        (1, "x" * 101, at),
        (1, "a\x00b", at),
        (1, None, datetime(2031, 1, 1)),  # noqa: DTZ001 - the naive value is the point
    ):
        with pytest.raises(ValueError, match=r"."):
            make_token(SECRET, conversation_id, number, when)
