"""The web form and the operators behind it, as bench/ingest.py and bench/websockets.py seed
their database before `omnicrm serve` starts on it.

`seed` migrates the database and makes the form `bench` (FORM_PATH), whose submissions go to
the queue "Web forms"; operators who hold a console there, available and members of that queue
(and spread over team queues besides, when asked); and operators in no queue whom
bench/websockets.py signs in to change their presence. Everyone signs in with
CONSOLE_PASSWORD, hashed with `passwords.CHEAP` as the test suite's servers do: the server
checks a password at what its hash cost to make, and production's argon2 costs the better part
of a second a sign-in, of the CPU the benchmarks measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.common import session_on
from core import passwords
from core.audit import CLI
from core.forms import create_form
from core.migrate import upgrade
from core.models import Presence, Role
from core.operators import create_operator, set_presence
from core.queues import set_members
from routing.setup import create_queue

FORM_PATH = "/forms/bench"
CONSOLE_PASSWORD = "bench console password"  # noqa: S105 - the bench database's throwaway


@dataclass(frozen=True)
class Staff:
    """The emails of the operators made."""

    consoles: list[str]  # available, in the form's queue: they hold a console
    triggers: list[str]  # in no queue: each will set their own presence


async def seed(database_url: str, consoles: int, *, teams: int = 0, triggers: int = 0) -> Staff:
    """The database migrated: `consoles` available operators, members of the form's queue and,
    with `teams`, spread over that many team queues too; `triggers` operators in no queue, at
    their first presence; the form."""
    await upgrade(database_url)
    staff = Staff(
        [f"console{number}@example.com" for number in range(consoles)],
        [f"presence{number}@example.com" for number in range(triggers)],
    )
    with passwords.using(passwords.CHEAP):
        async with session_on(database_url) as session, session.begin():
            forms_queue = await create_queue(session, CLI, name="Web forms")
            team_queues = [
                await create_queue(session, CLI, name=f"Team {number + 1}")
                for number in range(teams)
            ]
            operators = []
            for number, email in enumerate(staff.consoles):
                operator = await create_operator(
                    session,
                    CLI,
                    email=email,
                    name=f"Console {number}",
                    role=Role.OPERATOR,
                    password=CONSOLE_PASSWORD,
                )
                await set_presence(session, operator, Presence.AVAILABLE, None)
                operators.append(operator)
            for number, email in enumerate(staff.triggers):
                await create_operator(
                    session,
                    CLI,
                    email=email,
                    name=f"Presence {number}",
                    role=Role.OPERATOR,
                    password=CONSOLE_PASSWORD,
                )
            for number, team in enumerate(team_queues):
                members = [operator.id for operator in operators[number::teams]]
                await set_members(session, CLI, team.id, members)
            await set_members(session, CLI, forms_queue.id, [item.id for item in operators])
            slug = FORM_PATH.rsplit("/", 1)[1]
            await create_form(
                session, CLI, slug=slug, queue_id=forms_queue.id, required_fields=["email"]
            )
    return staff
