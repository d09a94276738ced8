"""Which queues' explained work a waiting step reads again: the step's scope.

Waiting work that routing explained already (`Conversation.routing_note`) gets a different
answer only when something its decision reads has changed: the queue's setup, its members, a
member as routing sees them (`OperatorSnapshot`: presence, capacity, load, skills,
languages, last assignment), the work's own facts, or time. An arrival frees room in one
or two queues; re-reading the explained backlog of all the others would be the bulk of its
pass.

`QueueMarks` remembers, per queue, the queue's side of those inputs as the last step that
looked at the queue saw them (`Fingerprint`: the setup, and each member's snapshot). A
step given the marks leaves out the explained work of queues whose fingerprint is the same
(work without a note is always read). The work's side is not fingerprinted; what changes it:

- work that enters a queue (new, reopened, transferred, put back, overflowed) has no note
  (`routing.setup.enter_queue`), nor does work whose offer was answered;
- an SLA escalation that raises the priority clears the note (`routing/sla.py`);
- what else changes a waiting conversation's facts and leaves its note (a contact's language
  learned from a later message, a supervisor changing the priority tier or owner, a merge)
  is seen by the next *full* step: a step without marks, or one whose marks are older than
  `FULL_SECONDS` (they are dropped then; the engine wakes for it, `routing/engine.py`). Before
  the marks such changes waited for the next complete pass just the same: they commit no
  event that wakes routing.

Time: a queue whose answers change by time alone (a `retry_at`: business hours, a sticky
wait) is never marked, nor is a sticky queue or one whose configuration is not valid. A step
cut short by the pass's bound marks none of the queues it looked at.

Marks live in one process's memory (the engine's) and hold nothing but what was read: a
fingerprint equal to the stored one means equal inputs (snapshots are frozen; the same one is
handed out while an operator is unchanged, so the comparison is mostly by identity). A new
process starts without marks: its first step is full.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from routing.setup import QueueSetup
from routing.strategies import OperatorSnapshot

# A step reads everything at least this often (see the module docstring).
FULL_SECONDS = 30.0

Fingerprint = tuple[QueueSetup | None, tuple[tuple[int, OperatorSnapshot | None], ...]]


def fingerprint(
    setup: QueueSetup | None,
    member_ids: Sequence[int],
    snapshots: Mapping[int, OperatorSnapshot],
) -> Fingerprint:
    """The queue's side of every decision about its waiting work (see the module docstring)."""
    return setup, tuple((operator_id, snapshots.get(operator_id)) for operator_id in member_ids)


def _markable(setup: QueueSetup | None) -> bool:
    return (
        setup is not None and setup.config is not None and "sticky" not in setup.config.strategies
    )


@dataclass
class Scope:
    """One step's scope: `skipped`, the queues whose explained work it leaves out."""

    now: datetime
    full: bool
    fingerprints: dict[int, Fingerprint]
    skipped: frozenset[int]


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
        """The scope of a step that starts now; `snapshots` as read (before any is given
        work)."""
        full = self.full_due(now)
        if full:
            self._marks.clear()
        fingerprints = {
            queue_id: fingerprint(setups.get(queue_id), members.get(queue_id, ()), snapshots)
            for queue_id in setups.keys() | members.keys()
        }
        skipped = frozenset(
            queue_id for queue_id, seen in fingerprints.items() if self._marks.get(queue_id) == seen
        )
        return Scope(now, full, fingerprints, skipped)

    def end(self, scope: Scope, *, cut: bool, unsettled: Collection[int]) -> None:
        """The step of `scope` is over: `cut` when it stopped at the pass's bound,
        `unsettled` the queues where an answer changes by time alone."""
        if cut:
            for queue_id in scope.fingerprints.keys() - scope.skipped:
                self._marks.pop(queue_id, None)
            return
        for queue_id, seen in scope.fingerprints.items():
            if queue_id in scope.skipped:
                continue
            if queue_id in unsettled or not _markable(seen[0]):
                self._marks.pop(queue_id, None)
            else:
                self._marks[queue_id] = seen
        if scope.full:
            self.full_at = scope.now

    def nothing_waits(self, now: datetime) -> None:
        """No work waits: a full step would read nothing, so this counts as one."""
        self._marks.clear()
        self.full_at = now

    def forget(self) -> None:
        """The next step reads everything (a failed pass: what it saw was not written)."""
        self._marks.clear()
        self.full_at = None
