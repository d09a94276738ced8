"""Who sees what: the one visibility rule, in every form a read path needs.

The rule
--------

- **Supervisors and admins** see everything.
- **An operator** sees a conversation that is in a queue they are a member of, or assigned
  to them; and then everything in it: messages, replies, internal notes, HTML, attachments,
  routing history, delivery status, read markers and mentions.
- **Interactions** are seen with their conversation. An interaction outside any conversation
  is seen by supervisors and admins only.
- **Integration tokens** (role ``integration``, no operator) are how other systems read a
  contact and its history (``READERS`` in ``web/routes_contacts.py``). They see the
  customer-facing interactions of the contact's conversations, in whichever queue: inbound
  and outbound messages, forms, calls and events from other systems, with their HTML and
  attachment lists. Never an internal note (``direction == internal`` or ``kind == note``),
  never an interaction outside a conversation, and no conversation itself: queues, assignees,
  routing decisions, SLA and delivery state are routing internals, and every conversation
  endpoint refuses the role.
- **Any other caller without an operator id** (an API token with the operator role) sees no
  conversation, interaction or lead.
- **Leads**: supervisors and admins all; an operator the leads they own and the leads whose
  conversation they may see (a lead is sales data about that conversation); integration tokens
  none (the leads API refuses them).
- **Tasks** (callbacks of missed calls, follow-ups; `core/tasks.py`): supervisors and admins
  all; an operator the tasks they own, the tasks of a queue they are a member of (a callback
  waits there until routing gives it an owner) and the tasks whose conversation they may see;
  integration tokens and other callers without an operator none.
- **Suggested answers** (`core/suggestions`): an operator is offered the team's replies from
  conversations they may see, and replies a supervisor marked shareable (never one marked
  excluded); shared canned responses and their own; every knowledge article (internal ones
  are for the team). Callers without an operator are offered nothing.
- **Knowledge articles** (`core/knowledge.py`): every operator reads them all; supervisors
  and admins write them; the public help page shows public articles to anyone.
- **Contacts themselves** (names, identities, tags, custom fields) are not confidential in
  this product: every signed-in caller and integration tokens read them (search, get, merge
  suggestions). What is confidential is what people said, and that lives in interactions.

Forms
-----

- SQL conditions, for queries (lists, views, full-text search, the timeline...):
  `conversation_filter`, `interaction_filter`, `lead_filter`, `task_filter`,
  `suggestion_filter`.
  They take an `Actor`; an operator's queues are a subquery, read in the caller's transaction.
- Pure predicates over the same facts, for places that must not query (the websocket deciding
  per event): `sees_conversation`, `sees_interaction`, `sees_lead`, `sees_event`. They take the
  operator's member queue ids from the caller. `tests/test_visibility_rule.py` checks with
  hypothesis that each agrees with its SQL twin on random data, on both databases, and
  `tests/test_visibility.py` runs every GET route and the websocket for every kind of caller.

Live events
-----------

Events carry ids and small labels, never content (`core.events`). Each websocket forwards an
event only if its caller may see what it is about, decided by `sees_event` from the event type
(`EVENT_AUDIENCE`) and, for conversation and lead events, two labels the emit site adds with
`audience_labels`: ``queues`` and ``operators`` (comma-separated ids). An event about a change
of hands names the queue and operators from before and after the change, so whoever loses a
conversation hears (by id) that it left them; the id is all they learn, and reading it
answers 403. A routing decision names the queue and operator it is about (the one offered,
assigned, requeued from or transferred to). A conversation or lead event without those
labels reaches supervisors and admins only; so does a type missing from the catalogue (fail
closed).

event types                                             received by
======================================================  ====================================
``conversation.{created,reopened,updated,assigned}``,   supervisors and admins; operators
``interaction.created``, ``routing.decision``,          who may see the conversation (its
``offer.{created,updated}``, ``sla.breached``           queue's members, its assignee),
                                                        before or after the change
``lead.{created,updated}``                              supervisors and admins; its owner
                                                        (before and after); those who may
                                                        see its conversation
``task.updated``                                        supervisors and admins; its owner
                                                        (before and after), its queue's
                                                        members, who may see its conversation
``conversation.read``, ``operator.mentioned``,          the operator in ``ids.operator``;
``notification.read``, ``task.due``                     supervisors and admins
``contact.{created,updated,merged}``,                   everyone signed in: contacts and
``operator.{created,updated,presence}``,                the team are no secret, and the
``queue.{created,updated}``, ``resync``                 consoles reload on them
``outbox.{queued,sending,sent,failed}``                 supervisors and admins (the events
                                                        carry no conversation id)
``delivery.updated``                                    like ``interaction.created``: who may
                                                        see the message's conversation
``routing.rules``, ``mailbox.*``, ``quarantine.*``      admins (their APIs are admins')
======================================================  ====================================
=======
Who receives which event type is declared with the type, in the one event catalogue
(`core.event_types`, tabled in docs/architecture.md "Events"): everyone signed in (contacts,
the team, queues, resync), those who may see the conversation or lead (`PLACED`, by the
labels above), the one operator in ``ids.operator`` (reads, mentions), supervisors and admins
(the outbox, whose events carry no conversation id), or admins (rules, channel accounts,
mailboxes, quarantine). `EVENT_AUDIENCE` is that column of the catalogue.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.orm import aliased

from core.audit import Actor
from core.event_types import CATALOG, audience_of
from core.event_types import Audience as Audience  # re-exported: the rule names its audiences
from core.events import Event
from core.models import (
    Conversation,
    Direction,
    Interaction,
    InteractionKind,
    Lead,
    QueueMember,
    Role,
    SuggestionDoc,
    SuggestionKind,
    Task,
)


class Placement(NamedTuple):
    """Where a conversation sits, which is all the rule asks of it: its queue and assignee."""

    queue_id: int | None
    assignee_id: int | None


def _sees_nothing_confidential(actor: Actor) -> bool:
    """Callers that see no conversation: integration tokens and tokens without an operator."""
    return actor.role == Role.INTEGRATION or actor.operator_id is None


def is_customer_facing(direction: str, kind: str) -> bool:
    """What the customer saw or sent (everything but internal notes)."""
    return direction != Direction.INTERNAL and kind != InteractionKind.NOTE


# --- SQL --------------------------------------------------------------------------------------


def conversation_filter(actor: Actor, conversation: Any = Conversation) -> ColumnElement[bool]:
    """The conversations `actor` may see, as a condition on `conversation` (the mapped class
    or an alias of it)."""
    if actor.is_supervisor:
        return true()
    if _sees_nothing_confidential(actor):
        return false()
    member_queues = select(QueueMember.queue_id).where(QueueMember.operator_id == actor.operator_id)
    return or_(
        conversation.assignee_id == actor.operator_id,
        conversation.queue_id.in_(member_queues),
    )


def interaction_filter(actor: Actor, interaction: Any = Interaction) -> ColumnElement[bool]:
    """The interactions `actor` may see, as a condition on `interaction`."""
    if actor.is_supervisor:
        return true()
    if actor.role == Role.INTEGRATION:
        return and_(
            interaction.conversation_id.is_not(None),
            interaction.direction != Direction.INTERNAL,
            interaction.kind != InteractionKind.NOTE,
        )
    if actor.operator_id is None:
        return false()
    holder = aliased(Conversation)
    return exists(
        select(holder.id).where(
            holder.id == interaction.conversation_id, conversation_filter(actor, holder)
        )
    )


def lead_filter(actor: Actor, lead: Any = Lead) -> ColumnElement[bool]:
    """The leads `actor` may see, as a condition on `lead`."""
    if actor.is_supervisor:
        return true()
    if _sees_nothing_confidential(actor):
        return false()
    holder = aliased(Conversation)
    return or_(
        lead.owner_id == actor.operator_id,
        exists(
            select(holder.id).where(
                holder.id == lead.conversation_id, conversation_filter(actor, holder)
            )
        ),
    )


def task_filter(actor: Actor, task: Any = Task) -> ColumnElement[bool]:
    """The tasks `actor` may see, as a condition on `task`: their own, their queues', those
    of conversations they may see (`conversation_filter`) and of leads they may see
    (`lead_filter`)."""
    if actor.is_supervisor:
        return true()
    if _sees_nothing_confidential(actor):
        return false()
    member_queues = select(QueueMember.queue_id).where(QueueMember.operator_id == actor.operator_id)
    holder = aliased(Conversation)
    lead = aliased(Lead)
    return or_(
        task.owner_id == actor.operator_id,
        task.queue_id.in_(member_queues),
        exists(
            select(holder.id).where(
                holder.id == task.conversation_id, conversation_filter(actor, holder)
            )
        ),
        exists(select(lead.id).where(lead.id == task.lead_id, lead_filter(actor, lead))),
    )


def suggestion_filter(actor: Actor, doc: Any = SuggestionDoc) -> ColumnElement[bool]:
    """The suggested answers `actor` may be offered (core/suggestions), as a condition on
    `doc`: a team's reply from a conversation they may see (`conversation_filter`) or marked
    shareable; a shared canned response or their own; any knowledge article (internal ones
    are for operators). Never an excluded one; nothing for callers without an operator."""
    if _sees_nothing_confidential(actor):
        return false()
    holder = aliased(Conversation)
    reply = and_(
        doc.kind == SuggestionKind.REPLY,
        or_(
            doc.shareable.is_(True),
            exists(
                select(holder.id).where(
                    holder.id == doc.conversation_id, conversation_filter(actor, holder)
                )
            ),
        ),
    )
    canned = and_(
        doc.kind == SuggestionKind.CANNED,
        or_(doc.owner_id.is_(None), doc.owner_id == actor.operator_id),
    )
    article = doc.kind == SuggestionKind.ARTICLE
    return and_(doc.excluded.is_(False), or_(reply, canned, article))


# --- pure predicates ----------------------------------------------------------------------------


def sees_conversation(
    actor: Actor, queue_id: int | None, assignee_id: int | None, member_queues: Collection[int]
) -> bool:
    """`conversation_filter` for one conversation, given the operator's member queue ids."""
    if actor.is_supervisor:
        return True
    if _sees_nothing_confidential(actor):
        return False
    return assignee_id == actor.operator_id or (queue_id is not None and queue_id in member_queues)


def sees_interaction(
    actor: Actor,
    conversation: Placement | None,
    direction: str,
    kind: str,
    member_queues: Collection[int],
) -> bool:
    """`interaction_filter` for one interaction; `conversation` is None outside any."""
    if actor.is_supervisor:
        return True
    if actor.role == Role.INTEGRATION:
        return conversation is not None and is_customer_facing(direction, kind)
    if conversation is None:
        return False
    return sees_conversation(actor, *conversation, member_queues)


def sees_lead(
    actor: Actor,
    owner_id: int | None,
    conversation: Placement | None,
    member_queues: Collection[int],
) -> bool:
    """`lead_filter` for one lead; `conversation` is None for a lead without one."""
    if actor.is_supervisor:
        return True
    if _sees_nothing_confidential(actor):
        return False
    if owner_id is not None and owner_id == actor.operator_id:
        return True
    return conversation is not None and sees_conversation(actor, *conversation, member_queues)


# --- live events --------------------------------------------------------------------------------


# Who receives each event type, from the catalogue (core/event_types.py).
EVENT_AUDIENCE: Mapping[str, Audience] = MappingProxyType(
    {name: declared.audience for name, declared in CATALOG.items()}
)


def audience_labels(
    placements: Iterable[Placement], operators: Iterable[int | None] = ()
) -> dict[str, str]:
    """The `queues` and `operators` labels of an event about what sits at `placements` (before
    and after a change), plus `operators` (e.g. a lead's owner, the operator offered work)."""
    queue_ids: set[int] = set()
    operator_ids = {operator_id for operator_id in operators if operator_id is not None}
    for queue_id, assignee_id in placements:
        if queue_id is not None:
            queue_ids.add(queue_id)
        if assignee_id is not None:
            operator_ids.add(assignee_id)
    return {
        "queues": ",".join(str(item) for item in sorted(queue_ids)),
        "operators": ",".join(str(item) for item in sorted(operator_ids)),
    }


def placement_of(conversation: Conversation) -> Placement:
    return Placement(conversation.queue_id, conversation.assignee_id)


def conversation_labels(conversation: Conversation, *before: Placement) -> dict[str, str]:
    """Audience labels of an event about `conversation` as it is now (and `before` a change)."""
    return audience_labels([placement_of(conversation), *before])


def _label_ids(event: Event, name: str) -> set[int] | None:
    raw = event.labels.get(name)
    if raw is None:
        return None
    return {int(part) for part in raw.split(",") if part.strip().isdigit()}


def sees_event(actor: Actor, member_queues: Collection[int], event: Event) -> bool:
    """Whether a websocket of `actor` (an operator in `member_queues`) may receive `event`."""
    audience = audience_of(event.type)
    if audience is Audience.EVERYONE:
        return True
    if audience is Audience.ADMINS:
        return actor.role == Role.ADMIN
    if actor.is_supervisor:
        return True
    if audience is Audience.SUPERVISORS or _sees_nothing_confidential(actor):
        return False
    if audience is Audience.OPERATOR:
        return event.ids.get("operator") == actor.operator_id
    queues = _label_ids(event, "queues")
    operators = _label_ids(event, "operators")
    if queues is None or operators is None:
        return False  # an event without its audience: supervisors only
    return actor.operator_id in operators or any(queue in member_queues for queue in queues)
