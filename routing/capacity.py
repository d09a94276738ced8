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
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Select, Text, case, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import CAPACITY_KINDS, MESSAGING, catalog
from core.models import Conversation, ConversationStatus, Offer, OfferStatus, Operator, Presence
from core.sql import constants_written_in
from routing.strategies import OperatorSnapshot

CHANNEL_KINDS: Final = CAPACITY_KINDS
# Work that holds an operator: waiting on them or on the customer; snoozed work does not.
HELD_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)


# The conversations that hold their operator, as the partial index ix_conversation_held
# states them (a statement reading them has its statuses written into its text, not passed
# as parameters, so the planner matches the index whatever plan it keeps).
HELD_WORK = (Conversation.assignee_id.is_not(None), Conversation.status.in_(HELD_STATUSES))


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


# The snapshots last built, each with the row it was built of (see `operator_snapshots`).
_built: dict[int, tuple[tuple[Any, ...], OperatorSnapshot]] = {}


# Where the counts per kind start in a row of `_snapshot_rows`.
_LOADS_FROM = 8


@lru_cache(maxsize=8)
def _snapshot_rows(special: tuple[tuple[str, str], ...]) -> Select[*tuple[Any, ...]]:
    """Every active operator's columns routing reads (their JSON as text: compared as read,
    decoded only for a snapshot built anew, as 1 == True == 1.0 but they are different
    levels; times are always UTC, `core.models.UTCDateTime`) and their load, one count per
    capacity kind. `special`: the channels whose kind is not messaging, (name, kind). Its
    values are written into its text (`core.sql.constants_written_in`): PostgreSQL plans it
    once per connection, and matches the held work's partial index."""
    kind = case(dict(special), value=Conversation.channel, else_=MESSAGING) if special else None
    kind_column = (literal(MESSAGING) if kind is None else kind).label("kind")
    held = select(Conversation.assignee_id.label("operator_id"), kind_column).where(*HELD_WORK)
    # An offer holds its place in the operator's capacity until it is answered.
    offered = (
        select(Offer.operator_id, kind_column)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(Offer.status == OfferStatus.PENDING)
    )
    work = union_all(held, offered).subquery("work")
    loads = (
        select(
            work.c.operator_id,
            *(func.count().filter(work.c.kind == name).label(name) for name in CHANNEL_KINDS),
        )
        .group_by(work.c.operator_id)
        .subquery("loads")
    )
    return constants_written_in(
        select(
            Operator.id,
            Operator.presence,
            Operator.presence_since,
            cast(Operator.skills, Text).label("skills"),
            cast(Operator.languages, Text).label("languages"),
            cast(Operator.capacity, Text).label("capacity"),
            Operator.total_capacity,
            Operator.last_assigned_at,
            *(func.coalesce(loads.c[name], 0) for name in CHANNEL_KINDS),
        )
        .outerjoin(loads, loads.c.operator_id == Operator.id)
        .where(Operator.active.is_(True))
    )


def channels_by_kind() -> dict[str, list[str]]:
    """The channels this process runs, by capacity kind, each list sorted (a channel it does
    not run counts as messaging, as `channel_kind` says)."""
    known = catalog()
    by_kind: dict[str, list[str]] = defaultdict(list)
    for name in sorted(known.names()):
        by_kind[known.capacity_kind(name)].append(name)
    return by_kind


async def operator_snapshots(session: AsyncSession) -> dict[int, OperatorSnapshot]:
    """Every active operator as routing sees them now, with their load per channel kind.

    One statement: the operators' columns routing reads and their loads (held work and
    pending offers, counted per capacity kind). It is read every time; a snapshot is built
    again only when its row differs from the last time (`_built`: the row is the whole of
    its input, so a kept snapshot is always what building it again would give; snapshots are
    frozen, and changed only by copying)."""
    special = tuple(
        (name, kind)
        for kind, names in sorted(channels_by_kind().items())
        if kind != MESSAGING
        for name in names
    )
    rows = await session.execute(_snapshot_rows(special))
    snapshots: dict[int, OperatorSnapshot] = {}
    built: dict[int, tuple[tuple[Any, ...], OperatorSnapshot]] = {}
    for row in rows:
        made_of = tuple(row)
        operator_id = row.id
        kept = _built.get(operator_id)
        if kept is not None and kept[0] == made_of:
            snapshot = kept[1]
        else:
            counts = made_of[_LOADS_FROM:]
            snapshot = OperatorSnapshot(
                id=operator_id,
                presence=Presence(row.presence),
                presence_since=row.presence_since,
                skills=_levels(row.skills),
                languages=_levels(row.languages),
                capacity=_levels(row.capacity),
                total_capacity=row.total_capacity,
                load={name: n for name, n in zip(CHANNEL_KINDS, counts, strict=True) if n},
                last_assigned_at=row.last_assigned_at,
            )
        snapshots[operator_id] = snapshot
        built[operator_id] = (made_of, snapshot)
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
