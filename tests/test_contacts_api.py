"""Contacts API: search, read, change, merge and the omnichannel timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, IngestResult, LeadRequest, ingest
from core.models import (
    Account,
    AuditEntry,
    Contact,
    IdentityKind,
    InteractionKind,
    Lead,
    Operator,
    Role,
    Task,
)
from tests.conftest import UserFactory
from web.keys import BUS

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def email(address: str) -> Address:
    return Address(IdentityKind.EMAIL, address)


def phone(number: str) -> Address:
    return Address(IdentityKind.PHONE, number)


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def arrive(
    sessions: SessionFactory,
    external_id: str,
    *addresses: Address,
    channel: str = "email",
    name: str = "",
    at: datetime = T0,
    **fields: Any,
) -> IngestResult:
    """One inbound interaction, committed."""
    async with sessions() as session, session.begin():
        return await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=external_id,
                addresses=addresses,
                display_name=name,
                text=f"message {external_id}",
                occurred_at=at,
                **fields,
            ),
        )


async def integration_token(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "crm-sync")
    return {"Authorization": f"Bearer {plain}"}


async def contact_row(sessions: SessionFactory, contact_id: int) -> Contact:
    async with sessions() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact


async def audit_rows(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def search_ids(user_or_client: Any, q: str, **headers: str) -> list[int]:
    response = await user_or_client.get("/api/v1/contacts", params={"q": q}, headers=headers)
    assert response.status == 200, await response.text()
    return [item["id"] for item in (await response.json())["items"]]


# --- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/contacts/1"),
        ("PATCH", "/api/v1/contacts/1"),
        ("POST", "/api/v1/contacts/1/merge"),
        ("GET", "/api/v1/contacts/1/timeline"),
    ],
)
async def test_every_contact_route_needs_auth(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_integration_token_reads_but_cannot_change(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    other = await arrive(sessions, "m2", email("bob@example.com"), name="Bob")
    headers = await integration_token(sessions)
    assert await search_ids(client, "anna", **headers) == [anna.contact_id]
    one = await client.get(f"/api/v1/contacts/{anna.contact_id}", headers=headers)
    assert one.status == 200
    timeline = await client.get(f"/api/v1/contacts/{anna.contact_id}/timeline", headers=headers)
    assert timeline.status == 200
    patch = await client.patch(
        f"/api/v1/contacts/{anna.contact_id}", json={"display_name": "X"}, headers=headers
    )
    assert patch.status == 403
    merge = await client.post(
        f"/api/v1/contacts/{anna.contact_id}/merge",
        json={"merge_id": other.contact_id},
        headers=headers,
    )
    assert merge.status == 403
    assert (await contact_row(sessions, anna.contact_id)).display_name == "Anna"
    assert (await contact_row(sessions, other.contact_id)).merged_into_id is None


# --- search -----------------------------------------------------------------------------


@pytest.mark.both_databases
async def test_search_by_name_is_case_insensitive_substring(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna Schmidt")
    await arrive(sessions, "m2", email("bob@example.org"), name="Bob Jones")
    assert await search_ids(user, "aNNa") == [anna.contact_id]
    assert await search_ids(user, "SCHMI") == [anna.contact_id]
    # LIKE wildcards in a query are literal characters, not patterns.
    assert await search_ids(user, "%") == []
    assert await search_ids(user, "nobody") == []


@pytest.mark.both_databases
async def test_search_by_email_whole_normalized_or_part(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("Anna.S@Example.com"), name="Anna")
    bob = await arrive(sessions, "m2", email("bob@example.com"), name="Bob")
    await arrive(sessions, "m3", email("carla@other.org"), name="Carla")
    assert await search_ids(user, "  ANNA.S@EXAMPLE.COM ") == [anna.contact_id]
    assert await search_ids(user, "EXAMPLE.COM") == [bob.contact_id, anna.contact_id]
    assert await search_ids(user, "anna.s@") == [anna.contact_id]


@pytest.mark.both_databases
async def test_search_by_phone_in_any_format(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    caller = await arrive(sessions, "c1", phone("+1 415 555 0100"), channel="sms", name="Dana")
    await arrive(sessions, "c2", phone("+1 415 555 0199"), channel="sms", name="Eve")
    # The settings' default region is US, so a national number finds the E.164 identity.
    assert await search_ids(user, "(415) 555-0100") == [caller.contact_id]
    assert await search_ids(user, "+14155550100") == [caller.contact_id]


@pytest.mark.both_databases
async def test_search_without_query_lists_everyone_newest_first(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    first = await arrive(sessions, "m1", email("a@example.com"), name="A")
    second = await arrive(sessions, "m2", email("b@example.com"), name="B")
    response = await user.get("/api/v1/contacts")
    body = await response.json()
    assert [item["id"] for item in body["items"]] == [second.contact_id, first.contact_id]
    assert body["items"][0]["identities"] == [
        {"id": body["items"][0]["identities"][0]["id"], "kind": "email", "address": "b@example.com"}
    ]
    assert body["next_cursor"] is None


@pytest.mark.both_databases
async def test_search_pages_return_every_contact_exactly_once(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    created = [
        (await arrive(sessions, f"m{n}", email(f"p{n}@example.com"), name=f"Person {n}")).contact_id
        for n in range(7)
    ]
    # Ties on created_at must still page cleanly (the id breaks them).
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id.in_(created[1:5])).values(created_at=T0)
        )
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"q": "person", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await user.get("/api/v1/contacts", params=params)
        assert response.status == 200
        body = await response.json()
        assert len(body["items"]) <= 3
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))
    async with sessions() as session:
        rows = (await session.execute(select(Contact.id, Contact.created_at))).all()
    expected = [row.id for row in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    assert seen == expected


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4Il0"},  # a valid encoding of the wrong shape: ["x"]
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "ten"},
        {"unknown": "1"},
    ],
)
async def test_bad_search_parameters_are_400(
    make_user: UserFactory, sessions: SessionFactory, params: dict[str, str]
) -> None:
    user = await make_user(Role.OPERATOR)
    await arrive(sessions, "m1", email("a@example.com"))
    response = await user.get("/api/v1/contacts", params=params)
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "invalid_input"
    assert set(body["error"]["fields"]) == set(params)


# --- get --------------------------------------------------------------------------------


async def test_get_contact_and_404(make_user: UserFactory, sessions: SessionFactory) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    response = await user.get(f"/api/v1/contacts/{anna.contact_id}")
    assert response.status == 200
    body = await response.json()
    assert body["display_name"] == "Anna"
    assert [i["address"] for i in body["identities"]] == ["anna@example.com"]
    assert body["merged_into_id"] is None
    for missing in (f"/api/v1/contacts/{anna.contact_id + 1000}", "/api/v1/contacts/abc"):
        response = await user.get(missing)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


# --- update -----------------------------------------------------------------------------


async def test_operator_updates_profile_fields(
    make_user: UserFactory, sessions: SessionFactory, app: web.Application
) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(
        sessions, "m1", email("anna@example.com"), name="Anna", contact_fields={"plan": "basic"}
    )
    async with app[BUS].subscribe() as events:
        response = await user.patch(
            f"/api/v1/contacts/{anna.contact_id}",
            json={
                "display_name": "  Anna Schmidt ",
                "language": "de-DE",
                "tags": ["b2b", " vip-prospect ", "b2b"],
                "custom_fields": {"city": "Berlin", "plan": None, "levels": nested_lists(10)},
            },
        )
        assert response.status == 200, await response.text()
        types = [events.get_nowait().type for _ in range(events.qsize())]
    body = await response.json()
    assert body["display_name"] == "Anna Schmidt"
    assert body["language"] == "de-DE"
    assert body["tags"] == ["b2b", "vip-prospect"]
    assert body["custom_fields"] == {"city": "Berlin", "levels": nested_lists(10)}
    assert body["identities"][0]["address"] == "anna@example.com"
    stored = await contact_row(sessions, anna.contact_id)
    assert stored.custom_fields == {"city": "Berlin", "levels": nested_lists(10)}
    assert stored.tags == ["b2b", "vip-prospect"]
    assert "contact.updated" in types
    [entry] = await audit_rows(sessions, "contact.update")
    assert entry.actor_id == user.operator.id
    assert entry.entity_id == str(anna.contact_id)
    assert sorted(entry.details["fields"]) == [
        "custom_fields",
        "display_name",
        "language",
        "tags",
    ]


async def test_patch_without_a_change_is_not_audited(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    response = await user.patch(
        f"/api/v1/contacts/{anna.contact_id}", json={"display_name": "Anna"}
    )
    assert response.status == 200
    assert await audit_rows(sessions, "contact.update") == []


@pytest.mark.parametrize(
    "body",
    [
        {"owner_id": 1},
        {"priority_tier": "vip"},
        {"account_id": 1},
        {"erp_ref": "C-10042"},
        {"display_name": "Changed", "priority_tier": "vip"},
    ],
)
async def test_operator_may_not_change_supervisor_fields(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any]
) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    response = await user.patch(f"/api/v1/contacts/{anna.contact_id}", json=body)
    assert response.status == 403
    error = (await response.json())["error"]
    assert error["code"] == "forbidden"
    assert set(error["fields"]) == set(body) - {"display_name"}
    stored = await contact_row(sessions, anna.contact_id)
    assert (stored.display_name, stored.priority_tier, stored.owner_id) == (
        "Anna",
        "standard",
        None,
    )
    assert await audit_rows(sessions, "contact.update") == []


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
async def test_supervisor_sets_owner_tier_and_account(
    make_user: UserFactory, sessions: SessionFactory, role: Role
) -> None:
    boss = await make_user(role)
    owner = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    async with sessions() as session, session.begin():
        account = Account(name="Acme GmbH")
        session.add(account)
        await session.flush()
        account_id = account.id
    response = await boss.patch(
        f"/api/v1/contacts/{anna.contact_id}",
        json={"owner_id": owner.operator.id, "priority_tier": "VIP", "account_id": account_id},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["owner_id"], body["priority_tier"], body["account_id"]) == (
        owner.operator.id,
        "vip",
        account_id,
    )
    cleared = await boss.patch(
        f"/api/v1/contacts/{anna.contact_id}", json={"owner_id": None, "account_id": None}
    )
    assert (await cleared.json())["owner_id"] is None
    stored = await contact_row(sessions, anna.contact_id)
    assert (stored.owner_id, stored.account_id, stored.priority_tier) == (None, None, "vip")


@pytest.mark.both_databases
async def test_a_supervisor_gives_a_contact_their_erp_customer_number_once(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    ben = await arrive(sessions, "m2", email("ben@example.com"), name="Ben")
    given = await boss.patch(f"/api/v1/contacts/{anna.contact_id}", json={"erp_ref": " C-1 "})
    assert (await given.json())["erp_ref"] == "C-1"
    taken = await boss.patch(f"/api/v1/contacts/{ben.contact_id}", json={"erp_ref": "C-1"})
    assert taken.status == 409
    assert set((await taken.json())["error"]["fields"]) == {"erp_ref"}
    cleared = await boss.patch(f"/api/v1/contacts/{anna.contact_id}", json={"erp_ref": None})
    assert (await cleared.json())["erp_ref"] is None
    assert (
        await boss.patch(f"/api/v1/contacts/{ben.contact_id}", json={"erp_ref": "C-1"})
    ).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": "vip"}, "tags"),
        ({"tags": ["ok", ""]}, "tags.1"),
        ({"tags": ["x" * 51]}, "tags.0"),
        ({"display_name": None}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"language": "not a language"}, "language"),
        ({"custom_fields": ["a"]}, "custom_fields"),
        ({"custom_fields": {"big": "x" * 70_000}}, "custom_fields"),
        ({"custom_fields": {"deep": nested_lists(11)}}, "custom_fields.deep"),
        # NaN is no JSON: refused while parsing (no field) or by the field.
        ({"custom_fields": {"ratio": float("nan")}}, None),
        ({"priority_tier": "   "}, "priority_tier"),
        ({"owner_id": 10**30}, "owner_id"),
        ({"owner_id": 999_999}, "owner_id"),
        ({"account_id": 999_999}, "account_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_patch_is_400_and_changes_nothing(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any], field: str | None
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"), name="Anna")
    # A valid change rides along with the bad one: it must not be applied either.
    response = await boss.patch(
        f"/api/v1/contacts/{anna.contact_id}", json={"language": "fr", **body}
    )
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    if field is not None:
        assert field in error["fields"]
    stored = await contact_row(sessions, anna.contact_id)
    assert (stored.display_name, stored.language, stored.tags) == ("Anna", None, [])
    assert await audit_rows(sessions, "contact.update") == []


async def test_owner_must_be_an_active_operator(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    gone = await make_user(Role.OPERATOR)
    async with sessions() as session, session.begin():
        operator = await session.get(Operator, gone.operator.id)
        assert operator is not None
        operator.active = False
    anna = await arrive(sessions, "m1", email("anna@example.com"))
    response = await boss.patch(
        f"/api/v1/contacts/{anna.contact_id}", json={"owner_id": gone.operator.id}
    )
    assert response.status == 400
    assert "owner_id" in (await response.json())["error"]["fields"]


async def test_patch_missing_contact_is_404(make_user: UserFactory) -> None:
    user = await make_user(Role.OPERATOR)
    response = await user.patch("/api/v1/contacts/4242", json={"display_name": "X"})
    assert response.status == 404


# --- merge ------------------------------------------------------------------------------


async def test_operator_may_not_merge(make_user: UserFactory, sessions: SessionFactory) -> None:
    user = await make_user(Role.OPERATOR)
    a = await arrive(sessions, "m1", email("a@example.com"))
    b = await arrive(sessions, "m2", email("b@example.com"))
    response = await user.post(
        f"/api/v1/contacts/{a.contact_id}/merge", json={"merge_id": b.contact_id}
    )
    assert response.status == 403
    assert (await contact_row(sessions, b.contact_id)).merged_into_id is None
    assert await audit_rows(sessions, "contact.merge") == []


@pytest.mark.both_databases
async def test_merge_moves_identities_and_history(
    make_user: UserFactory, sessions: SessionFactory, client: TestClient[Any, Any]
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    # The duplicate is older and came from a campaign: it holds the first touch.
    duplicate = await arrive(
        sessions,
        "form-1",
        email("anna.private@example.com"),
        channel="webform",
        kind=InteractionKind.FORM,
        name="A. Schmidt",
        at=T0,
        contact_fields={"city": "Hamburg", "plan": "basic"},
        marketing={"utm_source": "newsletter"},
        lead=LeadRequest(source="form:contact"),
    )
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact)
            .where(Contact.id == duplicate.contact_id)
            .values(created_at=T0 - timedelta(days=30), tags=["lead", "b2b"])
        )
        session.add(Task(kind="callback", contact_id=duplicate.contact_id, due_at=T0))
    await arrive(
        sessions, "sms-1", phone("+1 415 555 0100"), channel="sms", at=T0 + timedelta(hours=1)
    )
    survivor = await arrive(
        sessions,
        "mail-1",
        email("anna@work.example.com"),
        name="Anna Schmidt",
        at=T0 + timedelta(hours=2),
        contact_fields={"plan": "premium"},
        marketing={"utm_source": "google"},
    )
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == survivor.contact_id).values(tags=["b2b", "vip"])
        )
    before = await boss.get(f"/api/v1/contacts/{survivor.contact_id}/timeline")
    assert len((await before.json())["items"]) == 1

    response = await boss.post(
        f"/api/v1/contacts/{survivor.contact_id}/merge", json={"merge_id": duplicate.contact_id}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["id"] == survivor.contact_id
    assert body["display_name"] == "Anna Schmidt"
    assert body["tags"] == ["b2b", "vip", "lead"]
    assert body["custom_fields"] == {"city": "Hamburg", "plan": "premium"}
    assert body["marketing_source"] == {"utm_source": "newsletter"}
    assert sorted(i["address"] for i in body["identities"]) == [
        "anna.private@example.com",
        "anna@work.example.com",
    ]

    timeline = await boss.get(f"/api/v1/contacts/{survivor.contact_id}/timeline")
    items = (await timeline.json())["items"]
    assert [(i["channel"], i["external_id"]) for i in items] == [
        ("email", "mail-1"),
        ("webform", "form-1"),
    ]
    assert {i["contact_id"] for i in items} == {survivor.contact_id}

    assert await search_ids(boss, "anna.private@example.com") == [survivor.contact_id]
    assert await search_ids(boss, "schmidt") == [survivor.contact_id]

    tombstone = await boss.get(f"/api/v1/contacts/{duplicate.contact_id}")
    assert tombstone.status == 200
    tomb = await tombstone.json()
    assert tomb["merged_into_id"] == survivor.contact_id
    assert tomb["identities"] == []

    async with sessions() as session:
        lead_owner = await session.scalar(select(Lead.contact_id))
        task_owner = await session.scalar(select(Task.contact_id))
    assert lead_owner == task_owner == survivor.contact_id
    [entry] = await audit_rows(sessions, "contact.merge")
    assert entry.actor_id == boss.operator.id
    assert entry.entity_id == str(survivor.contact_id)
    assert entry.details == {
        "merged_id": duplicate.contact_id,
        "identities": 1,
        "conversations": 1,
        "interactions": 1,
        "leads": 1,
        "tasks": 1,
    }

    # A later message to the merged address lands on the survivor.
    again = await arrive(sessions, "mail-2", email("anna.private@example.com"))
    assert again.contact_id == survivor.contact_id


async def test_merge_errors(make_user: UserFactory, sessions: SessionFactory) -> None:
    boss = await make_user(Role.ADMIN)
    a = await arrive(sessions, "m1", email("a@example.com"))
    b = await arrive(sessions, "m2", email("b@example.com"))
    c = await arrive(sessions, "m3", email("c@example.com"))

    async def merge(into: int, other: Any) -> tuple[int, dict[str, Any]]:
        response = await boss.post(f"/api/v1/contacts/{into}/merge", json={"merge_id": other})
        return response.status, (await response.json()).get("error", {})

    status, error = await merge(a.contact_id, a.contact_id)
    assert (status, list(error["fields"])) == (400, ["merge_id"])
    assert (await merge(a.contact_id, 99_999))[0] == 404
    assert (await merge(99_999, a.contact_id))[0] == 404
    assert (await merge(a.contact_id, "b"))[0] == 400
    assert (await merge(a.contact_id, 2**70))[0] == 400

    assert (await merge(a.contact_id, b.contact_id))[0] == 200
    status, error = await merge(c.contact_id, b.contact_id)
    assert (status, error["code"]) == (409, "conflict")
    assert (await merge(b.contact_id, c.contact_id))[0] == 409
    assert (await contact_row(sessions, c.contact_id)).merged_into_id is None
    assert len(await audit_rows(sessions, "contact.merge")) == 1

    changed = await boss.patch(f"/api/v1/contacts/{b.contact_id}", json={"display_name": "X"})
    assert changed.status == 409


async def test_merging_a_survivor_repoints_older_tombstones(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    a = await arrive(sessions, "m1", email("a@example.com"))
    b = await arrive(sessions, "m2", email("b@example.com"))
    c = await arrive(sessions, "m3", email("c@example.com"))
    for into, other in ((b, a), (c, b)):
        response = await boss.post(
            f"/api/v1/contacts/{into.contact_id}/merge", json={"merge_id": other.contact_id}
        )
        assert response.status == 200
    first = await boss.get(f"/api/v1/contacts/{a.contact_id}")
    assert (await first.json())["merged_into_id"] == c.contact_id
    timeline = await boss.get(f"/api/v1/contacts/{c.contact_id}/timeline")
    assert len((await timeline.json())["items"]) == 3


# --- timeline ---------------------------------------------------------------------------


@pytest.mark.both_databases
async def test_timeline_is_every_channel_newest_first_in_pages(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    # A supervisor sees all of it; who sees which part is tests/test_visibility.py's subject.
    user = await make_user(Role.SUPERVISOR)
    anna = await arrive(sessions, "mail-0", email("anna@example.com"), at=T0)
    # The same person writes on other channels; they share an identity with the first.
    for n, channel in enumerate(["webform", "sms", "email", "webform"], start=1):
        await arrive(
            sessions,
            f"{channel}-{n}",
            email("anna@example.com"),
            channel=channel,
            # Two interactions at the same moment: the id orders them.
            at=T0 + timedelta(minutes=min(n, 3)),
        )
    await arrive(sessions, "other", email("someone@example.com"), at=T0 + timedelta(days=1))
    # One a page crosses the two at the same moment; two a page keeps them together.
    for limit in (1, 2):
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            url = f"/api/v1/contacts/{anna.contact_id}/timeline"
            response = await user.get(url, params=params)
            assert response.status == 200
            body = await response.json()
            seen.extend(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [item["external_id"] for item in seen] == [
            "webform-4",
            "email-3",
            "sms-2",
            "webform-1",
            "mail-0",
        ]
        assert {item["channel"] for item in seen} == {"email", "sms", "webform"}
    times = [datetime.fromisoformat(item["occurred_at"]) for item in seen]
    assert times == sorted(times, reverse=True)


async def test_timeline_errors(make_user: UserFactory, sessions: SessionFactory) -> None:
    user = await make_user(Role.OPERATOR)
    anna = await arrive(sessions, "m1", email("anna@example.com"))
    bad = await user.get(f"/api/v1/contacts/{anna.contact_id}/timeline", params={"cursor": "!!"})
    assert bad.status == 400
    assert "cursor" in (await bad.json())["error"]["fields"]
    missing = await user.get("/api/v1/contacts/99999/timeline")
    assert missing.status == 404
