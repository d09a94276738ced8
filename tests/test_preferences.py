"""An operator's own preferences: defaults, per-field validation, only the keys given change,
audited, one's own only."""

from __future__ import annotations

from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, Operator
from tests.conftest import UserFactory

PATH = "/api/v1/auth/me/preferences"


async def test_preferences_start_at_defaults_and_change_one_key_at_a_time(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    anna = await make_user(name="Anna")
    tom = await make_user(name="Tom")
    assert await (await anna.get(PATH)).json() == {
        "locale": "en",
        "time_zone": "",  # the computer's own
        "desktop_notifications": True,
        "sound": False,
        "title_count": True,
        "voice_device": "",  # no phone for calls
    }
    changed = await anna.patch(PATH, json={"locale": "ru", "time_zone": "Asia/Tbilisi"})
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["locale"] == "ru"
    again = await anna.patch(PATH, json={"sound": True})
    assert await again.json() == {
        "locale": "ru",
        "time_zone": "Asia/Tbilisi",
        "desktop_notifications": True,
        "sound": True,
        "title_count": True,
        "voice_device": "",
    }
    # Tom's are his own.
    assert (await (await tom.get(PATH)).json())["locale"] == "en"
    async with sessions() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "operator.preferences")
            )
        )
    assert [entry.details for entry in entries] == [
        {"locale": "ru", "time_zone": "Asia/Tbilisi"},
        {"sound": True},
    ]


async def test_bad_preferences_are_400_per_field_and_change_nothing(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    anna = await make_user()
    response = await anna.patch(PATH, json={"locale": "xx", "time_zone": "Mars/Olympus"})
    assert response.status == 400
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"locale", "time_zone"}
    assert "en, ru, de" in fields["locale"]
    async with sessions() as session:
        stored = await session.scalar(
            select(Operator.preferences).where(Operator.id == anna.operator.id)
        )
    assert stored == {}


async def test_the_phone_calls_ring_on_is_a_number_or_a_sip_address(
    make_user: UserFactory,
) -> None:
    anna = await make_user()
    number = await anna.patch(PATH, json={"voice_device": "+49 30 1111 2222"})
    assert (await number.json())["voice_device"] == "+493011112222"
    sip = await anna.patch(PATH, json={"voice_device": "sip:anna@pbx.example.com"})
    assert (await sip.json())["voice_device"] == "sip:anna@pbx.example.com"
    for bad in ("030 1111", "sip:nobody", "call me"):
        refused = await anna.patch(PATH, json={"voice_device": bad})
        assert refused.status == 400, bad
        assert set((await refused.json())["error"]["fields"]) == {"voice_device"}
    assert (await (await anna.get(PATH)).json())["voice_device"] == "sip:anna@pbx.example.com"
    unknown = await anna.patch(PATH, json={"ringtone": "loud"})
    assert unknown.status == 400
    cleared = await anna.patch(PATH, json={"voice_device": ""})
    assert (await cleared.json())["voice_device"] == ""


async def test_a_stored_value_that_no_longer_validates_reads_as_its_default(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    anna = await make_user()
    async with sessions() as session, session.begin():
        operator = await session.get(Operator, anna.operator.id)
        assert operator is not None
        operator.preferences = {"locale": "tlh", "sound": True}
    got = await (await anna.get(PATH)).json()
    assert (got["locale"], got["sound"]) == ("en", True)
