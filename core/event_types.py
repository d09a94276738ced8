"""Every event type omnicrm emits, declared once: its name, what its ids and labels mean, and
who receives it on the websocket.

Emit sites name a type by its constant here (`Event(INTERACTION_CREATED, ...)`), never by a
string, so a misspelt type is an import error; `core.events.emit` refuses a type that is not
declared (`UnknownEventType`), so a type built at run time cannot become a silent new one
either; and `tests/test_event_types.py` fails when code constructs an event from anything but
this catalogue. Consumers (the websocket, metrics, the routing engine, the console) compare
with the same names.

Events carry ids and small labels, never content (`core.events`). Who receives an event on a
websocket is its type's `Audience`, decided here and applied by `core.visibility.sees_event`;
a type missing from the catalogue reaches supervisors and admins only (fail closed).

To add an event type: declare it below with its audience, what it is about and what each id
and label holds; emit it with the constant; add it to the table in docs/architecture.md
("Events") — a test checks the table names every declared type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final


class Audience(enum.StrEnum):
    """Who an event type is for (`core.visibility.sees_event` applies it)."""

    # Everyone signed in: contacts and the team are no secret, and the consoles reload on them.
    EVERYONE = "everyone"
    # By the event's `queues` and `operators` labels (`core.visibility.audience_labels`): those
    # who may see the conversation or lead it is about, before or after the change.
    PLACED = "placed"
    # The operator in ids["operator"] (and supervisors and admins).
    OPERATOR = "operator"
    SUPERVISORS = "supervisors"
    ADMINS = "admins"


@dataclass(frozen=True)
class EventType:
    """One declared event type.

    `ids` and `labels` map each key an emit site may set to what it holds; an id or label not
    listed is not set. `audience` decides the websocket (see `Audience`)."""

    name: str
    audience: Audience
    about: str
    ids: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


class UnknownEventType(ValueError):
    """An event type that is not in the catalogue: a programming error, never input."""


_CATALOG: dict[str, EventType] = {}

# The audience labels of events about a conversation or a lead (`core.visibility`).
_PLACED_LABELS: Final = {
    "queues": "ids of the queues it sat in, before and after the change (comma-separated)",
    "operators": "ids of the operators it concerns, before and after the change",
}


def _declare(
    name: str,
    audience: Audience,
    about: str,
    *,
    ids: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    if name in _CATALOG:
        raise ValueError(f"event type {name!r} is declared twice")
    placed = _PLACED_LABELS if audience is Audience.PLACED else {}
    _CATALOG[name] = EventType(name, audience, about, dict(ids or {}), {**(labels or {}), **placed})
    return name


# --- everyone -----------------------------------------------------------------------------------

RESYNC: Final = _declare(
    "resync",
    Audience.EVERYONE,
    "events may have been missed (a slow subscriber, a reconnected listener): reload",
)
CONTACT_CREATED: Final = _declare(
    "contact.created", Audience.EVERYONE, "a new contact", ids={"contact": "the contact"}
)
CONTACT_UPDATED: Final = _declare(
    "contact.updated", Audience.EVERYONE, "a contact changed", ids={"contact": "the contact"}
)
CONTACT_MERGED: Final = _declare(
    "contact.merged",
    Audience.EVERYONE,
    "two contacts became one",
    ids={"contact": "the contact that remains", "merged": "the contact merged into it"},
)
CONTACT_ERASED: Final = _declare(
    "contact.erased",
    Audience.EVERYONE,
    "a contact's personal data was erased",
    ids={"contact": "the contact"},
)
OPERATOR_CREATED: Final = _declare(
    "operator.created", Audience.EVERYONE, "a new operator", ids={"operator": "the operator"}
)
OPERATOR_UPDATED: Final = _declare(
    "operator.updated",
    Audience.EVERYONE,
    "an operator's account, skills or capacity changed",
    ids={"operator": "the operator"},
)
OPERATOR_PRESENCE: Final = _declare(
    "operator.presence",
    Audience.EVERYONE,
    "an operator's presence changed",
    ids={"operator": "the operator"},
    labels={"presence": "the new presence"},
)
FORM_UPDATED: Final = _declare(
    "form.updated",
    Audience.ADMINS,
    "a web form was made, changed or stopped taking submissions",
    ids={"form": "the form"},
)
QUEUE_CREATED: Final = _declare(
    "queue.created", Audience.EVERYONE, "a new queue", ids={"queue": "the queue"}
)
QUEUE_UPDATED: Final = _declare(
    "queue.updated",
    Audience.EVERYONE,
    "a queue, its configuration or its members changed",
    ids={"queue": "the queue"},
)

# --- placed: those who may see the conversation or lead -----------------------------------------

_CONVERSATION_IDS: Final = {"conversation": "the conversation", "contact": "its contact"}

CONVERSATION_CREATED: Final = _declare(
    "conversation.created",
    Audience.PLACED,
    "an inbound message started a conversation",
    ids=_CONVERSATION_IDS,
    labels={"channel": "the conversation's channel"},
)
CONVERSATION_REOPENED: Final = _declare(
    "conversation.reopened",
    Audience.PLACED,
    "an inbound message reopened a resolved conversation",
    ids=_CONVERSATION_IDS,
    labels={"channel": "the conversation's channel"},
)
CONVERSATION_UPDATED: Final = _declare(
    "conversation.updated",
    Audience.PLACED,
    "a conversation's status or queue changed",
    ids=_CONVERSATION_IDS,
    labels={"channel": "the conversation's channel", "status": "its status now"},
)
CONVERSATION_ASSIGNED: Final = _declare(
    "conversation.assigned",
    Audience.PLACED,
    "a conversation changed hands",
    ids={**_CONVERSATION_IDS, "operator": "the new assignee (absent when unassigned)"},
    labels={"channel": "the conversation's channel"},
)
INTERACTION_CREATED: Final = _declare(
    "interaction.created",
    Audience.PLACED,
    "a message, reply or note was added to a conversation",
    ids={**_CONVERSATION_IDS, "interaction": "the interaction"},
    labels={
        "channel": "the interaction's channel",
        "direction": '"in" for an inbound message (ingest); absent for replies and notes',
        "visitor": "the website chat visitor who wrote it (webchat messages only)",
    },
)
INTERACTION_EDITED: Final = _declare(
    "interaction.edited",
    Audience.PLACED,
    "a customer edited a message they sent (its earlier text is kept)",
    ids={**_CONVERSATION_IDS, "interaction": "the interaction"},
    labels={"channel": "the interaction's channel"},
)
CONVERSATION_TYPING: Final = _declare(
    "conversation.typing",
    Audience.PLACED,
    "someone is typing in a chat (the website chat's visitor, or an operator answering it)",
    ids={"conversation": "the conversation", "operator": "the operator typing, if it is one"},
    labels={
        "who": '"customer" or "operator"',
        "typing": '"true" while typing, "false" when they stopped',
        "name": "the operator's name (what the visitor's widget shows)",
    },
)
ROUTING_DECISION: Final = _declare(
    "routing.decision",
    Audience.PLACED,
    "routing decided about a conversation (the decision log has the reasons)",
    ids={"conversation": "the conversation"},
    labels={"kind": "the decision's kind (queue, offer, assign, ...)"},
)
OFFER_CREATED: Final = _declare(
    "offer.created",
    Audience.PLACED,
    "an operator was offered a conversation",
    ids={"offer": "the offer", "conversation": "the conversation", "operator": "who is offered"},
    labels={"expires_at": "when the offer times out (ISO 8601)"},
)
OFFER_UPDATED: Final = _declare(
    "offer.updated",
    Audience.PLACED,
    "an offer was accepted, rejected, timed out or withdrawn",
    ids={"offer": "the offer", "conversation": "the conversation", "operator": "who was offered"},
    labels={"status": "the offer's status now"},
)
CALL_UPDATED: Final = _declare(
    "call.updated",
    Audience.PLACED,
    "a phone call moved on (queued, ringing an operator, connected, on hold, ended, recorded)",
    ids={"call": "the call", "conversation": "its conversation", "operator": "its operator"},
    labels={
        "state": "the call's state now",
        "outcome": "how it ended, once it has",
        "channel": '"voice"',
    },
)
TASK_UPDATED: Final = _declare(
    "task.updated",
    Audience.PLACED,
    "a task (a callback or a follow-up) was created, given an owner, became due or was closed",
    ids={
        "task": "the task",
        "conversation": "its conversation, if any",
        "lead": "the lead it is the next step of, if any",
    },
    labels={"kind": '"callback" or "follow_up"', "state": '"open" or "done"'},
)
SLA_BREACHED: Final = _declare(
    "sla.breached",
    Audience.PLACED,
    "a conversation missed an SLA target",
    ids={"conversation": "the conversation", "queue": "its queue (0: none)"},
    labels={
        "kind": "which target (first_response, resolution)",
        "notify": '"supervisors" when the queue escalates to them, else empty',
    },
)
LEAD_CREATED: Final = _declare(
    "lead.created",
    Audience.PLACED,
    "a sales lead was made: by a web form's submission, or by an operator from a conversation",
    ids={"lead": "the lead", "contact": "its contact", "conversation": "its conversation (form)"},
    labels={"channel": "the channel it came in on (form)"},
)
LEAD_UPDATED: Final = _declare(
    "lead.updated",
    Audience.PLACED,
    "a lead moved (stage, pipeline) or its title, value, owner or expected close changed",
    ids={"lead": "the lead", "contact": "its contact"},
)

# --- one operator -------------------------------------------------------------------------------

CONVERSATION_READ: Final = _declare(
    "conversation.read",
    Audience.OPERATOR,
    "an operator read a conversation up to now",
    ids={"conversation": "the conversation", "operator": "who read it"},
)
OPERATOR_MENTIONED: Final = _declare(
    "operator.mentioned",
    Audience.OPERATOR,
    "an internal note mentioned an operator",
    ids={
        "operator": "who is mentioned",
        "conversation": "the conversation",
        "interaction": "the note",
    },
)
NOTIFICATION_READ: Final = _declare(
    "notification.read",
    Audience.OPERATOR,
    "an operator read a notification (or all of them)",
    ids={"operator": "whose", "notification": "the notification (absent: all were read)"},
)
TASK_DUE: Final = _declare(
    "task.due",
    Audience.OPERATOR,
    "a task an operator owns became due (the console raises a desktop notification)",
    ids={
        "operator": "its owner",
        "task": "the task",
        "conversation": "its conversation, if any",
        "notification": "the notification left for it (absent without a conversation)",
    },
    labels={"kind": '"callback" or "follow_up"'},
)

# --- supervisors and admins ---------------------------------------------------------------------

_OUTBOX_IDS: Final = {"outbox": "the outbox item"}
_OUTBOX_LABELS: Final = {
    "channel": "the channel it goes out on",
    "reason": "why it failed without an attempt (bounce, erased)",
}

OUTBOX_QUEUED: Final = _declare(
    "outbox.queued",
    Audience.SUPERVISORS,
    "a reply waits for its channel's sender (the outbox worker wakes on it)",
    ids=_OUTBOX_IDS,
    labels=_OUTBOX_LABELS,
)
OUTBOX_SENDING: Final = _declare(
    "outbox.sending",
    Audience.SUPERVISORS,
    "an attempt failed for now and will be retried",
    ids=_OUTBOX_IDS,
    labels=_OUTBOX_LABELS,
)
OUTBOX_SENT: Final = _declare(
    "outbox.sent",
    Audience.SUPERVISORS,
    "the provider accepted a reply",
    ids=_OUTBOX_IDS,
    labels=_OUTBOX_LABELS,
)
OUTBOX_FAILED: Final = _declare(
    "outbox.failed",
    Audience.SUPERVISORS,
    "a reply will not be delivered",
    ids=_OUTBOX_IDS,
    labels=_OUTBOX_LABELS,
)

DELIVERY_UPDATED: Final = _declare(
    "delivery.updated",
    Audience.PLACED,
    "an outbound message's delivery changed (sent, delivered, read, failed, retried): the "
    "console redraws its status; without a conversation it reaches supervisors only",
    ids={"outbox": "the outbox item", "conversation": "its conversation, if any"},
    labels={"channel": "the channel it goes out on"},
)

# --- admins -------------------------------------------------------------------------------------

ROUTING_RULES: Final = _declare(
    "routing.rules",
    Audience.ADMINS,
    "the queue rules or the lead rules were replaced",
    labels={"name": "queue_rules or lead_rules"},
)
CHANNEL_ACCOUNT_CREATED: Final = _declare(
    "channel_account.created",
    Audience.ADMINS,
    "a channel account was added",
    ids={"channel_account": "the account"},
)
CHANNEL_ACCOUNT_UPDATED: Final = _declare(
    "channel_account.updated",
    Audience.ADMINS,
    "a channel account's settings changed, or it was disabled",
    ids={"channel_account": "the account"},
)
CHANNEL_ACCOUNT_FAILED: Final = _declare(
    "channel_account.failed",
    Audience.ADMINS,
    "a channel account's poller or sender recorded an error",
    ids={"channel_account": "the account"},
)
QUARANTINE_CREATED: Final = _declare(
    "quarantine.created",
    Audience.ADMINS,
    "a message that could not be imported was quarantined",
    ids={"quarantine": "the quarantine row", "channel_account": "the account it came from"},
)
QUARANTINE_UPDATED: Final = _declare(
    "quarantine.updated",
    Audience.ADMINS,
    "a quarantined message was retried, imported or dismissed",
    ids={"quarantine": "the quarantine row", "channel_account": "the account it came from"},
)

# Types chosen at run time, by the state that names them.
CONVERSATION_BY_STATE: Final[Mapping[str, str]] = {
    "created": CONVERSATION_CREATED,
    "reopened": CONVERSATION_REOPENED,
}
OUTBOX_BY_STATUS: Final[Mapping[str, str]] = {
    "queued": OUTBOX_QUEUED,
    "sending": OUTBOX_SENDING,
    "sent": OUTBOX_SENT,
    "failed": OUTBOX_FAILED,
}

CATALOG: Final[Mapping[str, EventType]] = _CATALOG


def declared(name: str) -> EventType:
    """The declaration of `name`; UnknownEventType if there is none."""
    found = _CATALOG.get(name)
    if found is None:
        raise UnknownEventType(
            f"event type {name!r} is not declared in core/event_types.py: declare it there"
        )
    return found


def audience_of(name: str) -> Audience:
    """Who receives events of type `name`; an undeclared type reaches supervisors only."""
    found = _CATALOG.get(name)
    return found.audience if found is not None else Audience.SUPERVISORS
