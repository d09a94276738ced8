"""Which queues' explained work a waiting step reads again: the step's scope.

Waiting work that routing explained already (`Conversation.routing_note`) gets a different
answer only when something its decision reads has changed: the queue's setup, its members, a
member as routing sees them (`OperatorSnapshot`: presence, capacity, load, skills,
languages), the work's own facts, or time. An arrival frees room in one or two queues;
re-reading the explained backlog of all the others would be the bulk of its pass.

`QueueMarks` remembers, per queue, the queue's side of those inputs under which all of its
explained work was last known to be undecidable (`Fingerprint`: the setup, the members and
their snapshots as the step that looked at the queue left them, after the work it gave). A
step given the marks leaves out the explained work of a queue that is *no freer* than its mark
(`no_freer`): the same setup and members, each member as they were or only busier (more
load; when they were last given work orders candidates, it makes nobody eligible). Such work
would be undecidable again. Work without a note is always read. A step keeps the mark of a
queue it left out and decided nothing in (it stays the freer state, which covers the busier
ones); any other queue it marks anew, or unmarks.

The work's side is not fingerprinted; what changes it:

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
cut short by the pass's bound unmarks every queue it looked at or decided in.

Marks live in one process's memory (the engine's) and hold nothing but what was read and
decided; the caller forgets them when its pass does not commit. A new process starts without
marks: its first step is full.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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


def _busier(now: OperatorSnapshot | None, then: OperatorSnapshot | None) -> bool:
    """The operator as they were, or only holding more (see the module docstring)."""
    if now is then:
        return True
    if now is None or then is None:
        return False
    return (
        now.presence == then.presence
        and now.presence_since == then.presence_since
        and now.skills == then.skills
        and now.languages == then.languages
        and now.capacity == then.capacity
        and now.total_capacity == then.total_capacity
        and all(now.load_of(kind) >= held for kind, held in then.load.items())
    )


def no_freer(now: Fingerprint, mark: Fingerprint) -> bool:
    """Whether the queue is as it was marked, or differs only by members holding more: its
    explained work, undecidable under the mark, is undecidable now."""
    return (
        now[0] == mark[0]
        and now[1] == mark[1]
        and all(_busier(a, b) for a, b in zip(now[2], mark[2], strict=True))
    )


def _markable(setup: QueueSetup | None) -> bool:
    return (
        setup is not None and setup.config is not None and "sticky" not in setup.config.strategies
    )


@dataclass
class Scope:
    """One step's scope: `skipped`, the queues whose explained work it leaves out."""

    now: datetime
    full: bool
    setups: Mapping[int, QueueSetup]
    members: Mapping[int, Sequence[int]]
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
        """The scope of a step that starts now, with the operators as read."""
        full = self.full_due(now)
        if full:
            self._marks.clear()
        skipped = frozenset(
            queue_id
            for queue_id, mark in self._marks.items()
            if no_freer(
                fingerprint(setups.get(queue_id), members.get(queue_id, ()), snapshots), mark
            )
        )
        return Scope(now, full, setups, members, skipped)

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
        for queue_id in scope.setups.keys() | scope.members.keys():
            if queue_id in scope.skipped and queue_id not in decided:
                continue  # its mark stands (see the module docstring)
            setup = scope.setups.get(queue_id)
            if cut or queue_id in unsettled or not _markable(setup):
                self._marks.pop(queue_id, None)
            else:
                members = scope.members.get(queue_id, ())
                self._marks[queue_id] = fingerprint(setup, members, snapshots)
        if scope.full and not cut:
            self.full_at = scope.now

    def nothing_waits(self, now: datetime) -> None:
        """No work waits: a full step would read nothing, so this counts as one."""
        self._marks.clear()
        self.full_at = now

    def forget(self) -> None:
        """The next step reads everything (a failed pass: what it saw was not written)."""
        self._marks.clear()
        self.full_at = None
