"""The demo's cast and set: the team, the queues' routing, the mailboxes, the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from core.models import Role


@dataclass(frozen=True)
class DemoLogin:
    role: str
    name: str
    email: str
    password: str


@dataclass(frozen=True)
class Member:
    role: Role
    name: str
    email: str
    skills: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)


TEAM = (
    Member(Role.ADMIN, "Maria Keller", "admin@example.com", languages={"en": 100, "de": 100}),
    Member(
        Role.SUPERVISOR,
        "Tom Becker",
        "supervisor@example.com",
        skills={"support": 90, "sales": 70},
        languages={"en": 100, "de": 100},
        capacity={"voice": 1, "messaging": 5, "email": 20},
    ),
    Member(
        Role.OPERATOR,
        "Anna Novak",
        "anna@example.com",
        skills={"support": 80, "returns": 70},
        languages={"en": 100, "pl": 100, "de": 60},
        capacity={"voice": 1, "messaging": 4, "email": 15},
    ),
    Member(
        Role.OPERATOR,
        "Luis García",
        "luis@example.com",
        skills={"sales": 85, "support": 50},
        languages={"en": 100, "es": 100},
        capacity={"voice": 1, "messaging": 5, "email": 20},
    ),
)
DEMO_MARKER_EMAIL = TEAM[0].email
# First-response targets of the demo's queues, in minutes from entering the queue.
SLA_MINUTES = {"Support": 60, "Sales": 240}
# Routing of the demo's queues (docs/routing.md): Support offers chats and emails to the
# customer's own operator first, then to whoever has most room; Sales assigns in turn.
QUEUE_CONFIG: dict[str, dict[str, Any]] = {
    "Support": {
        "strategies": ["sticky", "least_busy"],
        "sticky_max_wait_seconds": 120,
        "offer_timeout_seconds": 60,
        "sla": {"first_response_minutes": SLA_MINUTES["Support"], "resolution_minutes": 2880},
        "escalation": {"actions": ["raise_priority", "notify_supervisors"]},
    },
    "Sales": {
        "strategies": ["round_robin"],
        "sla": {"first_response_minutes": SLA_MINUTES["Sales"]},
    },
}
# The team's mailboxes, by name: where customers' email arrives, and its queue. They are not
# connected to a mail server (inactive, no password): an admin fills in the real settings.
MAILBOXES = {"support": ("support@example.com", "Support"), "sales": ("sales@example.com", "Sales")}
# First-response due times are set for the conversations of the last day only.
SLA_HISTORY = timedelta(days=1)
