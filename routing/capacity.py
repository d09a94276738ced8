"""Capacity: how much work an operator may hold at once, per kind of work, and how much they hold.

A phone call holds an operator completely, chats and messengers are handled several at a time,
email many more; so capacity is counted per kind, e.g. {"voice": 1, "messaging": 5, "email": 20},
with an optional cap over all kinds (`Operator.total_capacity`). Each channel names its kind in
its facts (core/channels.py); a channel this process does not run counts as messaging.

What an operator holds (their load): the conversations assigned to them that are open or
pending (waiting on them or on the customer; snoozed work does not hold them), and the offers
they have not answered yet (an offer keeps its place until it is answered).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import CompoundSelect, Text, cast, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import CAPACITY_KINDS, catalog
from core.models import Conversation, ConversationStatus, Offer, OfferStatus, Operator, Presence
from routing.strategies import OperatorSnapshot

CHANNEL_KINDS: Final = CAPACITY_KINDS
# Work that holds an operator: waiting on them or on the customer; snoozed work does not.
HELD_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)


def channel_kind(channel: str) -> str:
    """The capacity kind of a channel's work, from the installed channels' facts."""
    return catalog().capacity_kind(channel)


def has_room(operator: OperatorSnapshot, kind: str) -> bool:
    """Available and under capacity for `kind` (and under the total cap)."""
    if operator.presence != Presence.AVAILABLE:
        return False
    if operator.load_of(kind) >= operator.capacity_of(kind):
        return False
    return operator.total_capacity is None or operator.total_load < operator.total_capacity


def _levels(text: str | None) -> dict[str, int]:
    """Levels by name from a JSON column's text (anything but an object of whole numbers,
    not negative, is ignored)."""
    raw = json.loads(text) if text else {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): value
        for name, value in raw.items()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
    }


# The snapshots last built, each with what it was built of (see `operator_snapshots`): the
# operator's row as read (its JSON as text, as 1 == True == 1.0 but they are different
# levels; its times are always UTC, `core.models.UTCDateTime`) and their load.
_built: dict[int, tuple[tuple[Any, ...], dict[str, int], OperatorSnapshot]] = {}
_NO_LOAD: dict[str, int] = {}


# `operator_snapshots`' two statements, built once.
_HELD = select(
    Conversation.assignee_id.label("operator_id"), Conversation.channel, func.count()
).where(Conversation.assignee_id.is_not(None), Conversation.status.in_(HELD_STATUSES))
# An offer holds its place in the operator's capacity until it is answered.
_OFFERED = (
    select(Offer.operator_id, Conversation.channel, func.count())
    .join(Conversation, Conversation.id == Offer.conversation_id)
    .where(Offer.status == OfferStatus.PENDING)
)
_LOADS: CompoundSelect[int, str, int] = union_all(
    _HELD.group_by(Conversation.assignee_id, Conversation.channel),
    _OFFERED.group_by(Offer.operator_id, Conversation.channel),
)
_OPERATORS = select(
    Operator.id,
    Operator.presence,
    Operator.presence_since,
    # As text: compared as read, decoded only for a snapshot built anew.
    cast(Operator.skills, Text).label("skills"),
    cast(Operator.languages, Text).label("languages"),
    cast(Operator.capacity, Text).label("capacity"),
    Operator.total_capacity,
    Operator.last_assigned_at,
).where(Operator.active.is_(True))


async def operator_snapshots(session: AsyncSession) -> dict[int, OperatorSnapshot]:
    """Every active operator as routing sees them now, with their load per channel kind.

    Two statements: the loads (held work and pending offers, counted per operator and channel
    in one), and the operators' columns routing reads (their JSON as text). Those are read
    every time; a snapshot is built again only when what it is built of differs from the last
    time (`_built`: the row and the load are the whole of its input, so a kept snapshot is
    always what building it again would give; snapshots are frozen, and changed only by
    copying)."""
    kinds: dict[str, str] = {}
    load: dict[int, dict[str, int]] = defaultdict(dict)
    for operator_id, channel, count in await session.execute(_LOADS):
        kind = kinds.get(channel)
        if kind is None:
            kind = kinds[channel] = channel_kind(channel)
        held = load[operator_id]
        held[kind] = held.get(kind, 0) + count
    rows = await session.execute(_OPERATORS)
    snapshots: dict[int, OperatorSnapshot] = {}
    built: dict[int, tuple[tuple[Any, ...], dict[str, int], OperatorSnapshot]] = {}
    for row in rows:
        made_of = tuple(row)
        operator_id = row.id
        held = load.get(operator_id, _NO_LOAD)
        kept = _built.get(operator_id)
        if kept is not None and kept[0] == made_of and kept[1] == held:
            snapshot = kept[2]
        else:
            snapshot = OperatorSnapshot(
                id=operator_id,
                presence=Presence(row.presence),
                presence_since=row.presence_since,
                skills=_levels(row.skills),
                languages=_levels(row.languages),
                capacity=_levels(row.capacity),
                total_capacity=row.total_capacity,
                load=dict(held),
                last_assigned_at=row.last_assigned_at,
            )
        snapshots[operator_id] = snapshot
        built[operator_id] = (made_of, held, snapshot)
    _built.clear()
    _built.update(built)
    return snapshots


@dataclass
class QueueRooms:
    """How many members of each queue have room for each channel kind, kept as work is given."""

    snapshots: dict[int, OperatorSnapshot]
    members: Mapping[int, list[int]]
    queues_of: dict[int, list[int]] = field(default_factory=dict)
    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    # The kinds each operator has room for, worked out when first asked.
    rooms: dict[int, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for queue_id, member_ids in self.members.items():
            for operator_id in member_ids:
                self.queues_of.setdefault(operator_id, []).append(queue_id)

    def room_of(self, operator_id: int) -> frozenset[str]:
        """The kinds of work the operator has room for (none without a snapshot)."""
        found = self.rooms.get(operator_id)
        if found is None:
            snapshot = self.snapshots.get(operator_id)
            found = frozenset(
                kind for kind in CHANNEL_KINDS if snapshot is not None and has_room(snapshot, kind)
            )
            self.rooms[operator_id] = found
        return found

    def count(self, queue_id: int, kind: str) -> int:
        key = (queue_id, kind)
        if key not in self.counts:
            self.counts[key] = sum(
                1
                for operator_id in self.members.get(queue_id, ())
                if kind in self.room_of(operator_id)
            )
        return self.counts[key]

    def give(self, operator_id: int, kind: str, now: datetime) -> None:
        before = self.room_of(operator_id)
        snapshot = self.snapshots[operator_id]
        load = dict(snapshot.load)
        load[kind] = load.get(kind, 0) + 1
        self.snapshots[operator_id] = snapshot.model_copy(
            update={"load": load, "last_assigned_at": now}
        )
        del self.rooms[operator_id]
        lost = before - self.room_of(operator_id)
        for queue_id in self.queues_of.get(operator_id, ()):
            for lost_kind in lost:
                key = (queue_id, lost_kind)
                if key in self.counts:
                    self.counts[key] -= 1
