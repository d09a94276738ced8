"""Which queues' explained work a waiting step reads again: the step's scope.

Waiting work that routing explained already (`Conversation.routing_note`) gets a different
answer only when something its decision reads has changed: the queue's setup, its members, a
member as routing sees them (`OperatorSnapshot`: presence, capacity, load, skills,
languages), the work's own facts, or time. An arrival frees room in one or two queues;
re-reading the explained backlog of all the others would be the bulk of its pass.

`QueueMarks` remembers, per queue, the queue's side of those inputs under which all of its
explained work was last known to be undecidable (`Fingerprint`: the setup, the members and
their snapshots as the step that looked at the queue left them, after the work it gave). A
step given the marks reads a marked queue's explained work only of the kinds for which the
queue is now *freer* than its mark (`freer`): every kind when the setup or the members
changed, or a member's presence, skills, languages or capacities; the kinds whose load fell
when only loads did (every kind under a total cap). A member who only holds more, or was
last given work since, makes nobody eligible. Work without a note is always read. A step
keeps the mark of a queue it read nothing of and decided nothing in (the freer state covers
the busier ones); any other queue it marks anew, or unmarks.

The work's side is not fingerprinted; what changes it:

- work that enters a queue (new, reopened, transferred, put back, overflowed) has no note
  (`routing.setup.enter_queue`), nor does work whose offer was answered, nor work a person
  assigned, unassigned or set open again (`core/conversations.py`);
- an SLA escalation that raises the priority clears the note (`routing/sla.py`);
- what else changes a waiting conversation's facts and leaves its note (a contact's language
  learned from a later message, a supervisor changing the priority tier or owner, a merge)
  is seen by the next *full* step: a step without marks, or one whose marks are older than
  `FULL_SECONDS` (they are dropped then; the engine wakes for it, `routing/engine.py`). Before
  the marks such changes waited for the next complete pass just the same: they commit no
  event that wakes routing.

Time: a queue whose answers change by time alone (a `retry_at`: business hours, a sticky
wait) is never marked, nor is a sticky queue or one whose configuration is not valid. A step
cut short by the pass's bound unmarks every queue it looked at or decided in.

Marks live in one process's memory (the engine's) and hold nothing but what was read and
decided; the caller forgets them when its pass does not commit. A new process starts without
marks: its first step is full. Where several processes route (PostgreSQL), another's pass may
explain work under a busier view than this process's mark: its `routing.decision` events
(kind `none` or `wait`) unmark the queues they name (`explained_elsewhere`, from the engine).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from routing.capacity import CHANNEL_KINDS
from routing.setup import QueueSetup
from routing.strategies import OperatorSnapshot

# A step reads everything at least this often (see the module docstring).
FULL_SECONDS = 30.0

Fingerprint = tuple[QueueSetup | None, tuple[int, ...], tuple[OperatorSnapshot | None, ...]]


def fingerprint(
    setup: QueueSetup | None,
    member_ids: Sequence[int],
    snapshots: Mapping[int, OperatorSnapshot],
) -> Fingerprint:
    """The queue's side of every decision about its waiting work (see the module docstring)."""
    return setup, tuple(member_ids), tuple(snapshots.get(i) for i in member_ids)


_ALL: frozenset[str] = frozenset(CHANNEL_KINDS)
_NONE: frozenset[str] = frozenset()


def _freer(now: OperatorSnapshot | None, then: OperatorSnapshot | None) -> frozenset[str]:
    """The kinds of work the operator may take now that they could not then: none when they
    are as they were or only hold more, the kinds whose load fell when only loads differ,
    every kind when anything else changed (or the load under a total cap fell)."""
    if now is then:
        return _NONE
    if now is None or then is None:
        return _ALL if now is not None else _NONE
    if (
        now.presence != then.presence
        or now.presence_since != then.presence_since
        or now.skills != then.skills
        or now.languages != then.languages
        or now.capacity != then.capacity
        or now.total_capacity != then.total_capacity
    ):
        return _ALL
    if now.total_capacity is not None and now.total_load < then.total_load:
        return _ALL
    return frozenset(kind for kind, held in then.load.items() if now.load_of(kind) < held)


def freer(now: Fingerprint, mark: Fingerprint) -> frozenset[str]:
    """The kinds of explained work in the queue that may be decidable now, though all of it
    was not under `mark` (see the module docstring): none when the queue is no freer."""
    if now[0] != mark[0] or now[1] != mark[1]:
        return _ALL
    kinds: frozenset[str] = _NONE
    for member_now, member_then in zip(now[2], mark[2], strict=True):
        kinds |= _freer(member_now, member_then)
        if kinds == _ALL:
            break
    return kinds


def _markable(setup: QueueSetup | None) -> bool:
    return (
        setup is not None and setup.config is not None and "sticky" not in setup.config.strategies
    )


@dataclass
class Scope:
    """One step's scope: for each marked queue, the kinds of its explained work to read
    (`kinds`; a queue not in it: every kind). `skipped`: those with none to read."""

    now: datetime
    full: bool
    setups: Mapping[int, QueueSetup]
    members: Mapping[int, Sequence[int]]
    kinds: dict[int, frozenset[str]]

    @property
    def skipped(self) -> frozenset[int]:
        return frozenset(queue_id for queue_id, kinds in self.kinds.items() if not kinds)


@dataclass
class QueueMarks:
    """What the last steps saw of each queue (see the module docstring); one per engine."""

    # When the last full step ended; None: there was none yet.
    full_at: datetime | None = None
    _marks: dict[int, Fingerprint] = field(default_factory=dict)

    def full_due(self, now: datetime) -> bool:
        return self.next_full is None or now >= self.next_full

    @property
    def next_full(self) -> datetime | None:
        """When the next step reads everything (None: the next one does)."""
        if self.full_at is None:
            return None
        return self.full_at + timedelta(seconds=FULL_SECONDS)

    def begin(
        self,
        now: datetime,
        setups: Mapping[int, QueueSetup],
        members: Mapping[int, Sequence[int]],
        snapshots: Mapping[int, OperatorSnapshot],
    ) -> Scope:
        """The scope of a step that starts now, with the operators as read."""
        full = self.full_due(now)
        if full:
            self._marks.clear()
        kinds = {
            queue_id: freer(
                fingerprint(setups.get(queue_id), members.get(queue_id, ()), snapshots), mark
            )
            for queue_id, mark in self._marks.items()
        }
        return Scope(now, full, setups, members, kinds)

    def end(
        self,
        scope: Scope,
        snapshots: Mapping[int, OperatorSnapshot],
        *,
        cut: bool,
        decided: Collection[int],
        unsettled: Collection[int],
    ) -> None:
        """The step of `scope` is over, the operators as it left them (`snapshots`, after
        the work it gave): `cut` when it stopped at the pass's bound, `decided` the queues
        whose work it gave or explained, `unsettled` those where an answer changes by time
        alone."""
        skipped = scope.skipped
        for queue_id in scope.setups.keys() | scope.members.keys():
            if queue_id in skipped and queue_id not in decided:
                continue  # its mark stands (see the module docstring)
            setup = scope.setups.get(queue_id)
            if cut or queue_id in unsettled or not _markable(setup):
                self._marks.pop(queue_id, None)
            else:
                members = scope.members.get(queue_id, ())
                self._marks[queue_id] = fingerprint(setup, members, snapshots)
        if scope.full and not cut:
            self.full_at = scope.now

    def explained_elsewhere(self, queue_ids: Collection[int]) -> None:
        """Another process's pass explained work in these queues (all, when none are named):
        work explained under its view of the operators, which may be busier than the mark."""
        if not queue_ids:
            self._marks.clear()
        for queue_id in queue_ids:
            self._marks.pop(queue_id, None)

    def nothing_waits(self, now: datetime) -> None:
        """No work waits: a full step would read nothing, so this counts as one."""
        self._marks.clear()
        self.full_at = now

    def forget(self) -> None:
        """The next step reads everything (a failed pass: what it saw was not written)."""
        self._marks.clear()
        self.full_at = None
