"""Demo data: a small contact center with a few weeks of history, for a first look.

`omnicrm demo` (and `make run` on a fresh database) loads it. Everything goes through the
paths the product uses (web/demo/story.py says which), told on a manual clock at the time each
thing happened. The content is fixed; only the operators' passwords are random.

Besides weeks of history (`history.py`), the last hours are a busy day (`today.py`), so that
the agent console and the supervisor monitor have something to show: customers waiting in the
queues, answers inside and outside the first-response targets (measured from when a
conversation entered its queue), an abandoned conversation, a mention, canned responses, a
likely duplicate contact, and the team's presence. The routing engine is not needed for any
of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import channels, clock
from core.audit import CLI
from core.canned import create_canned
from core.errors import Conflict
from core.knowledge import create_article
from core.models import ArticleVisibility, Operator, utcnow
from web.demo.cast import DEMO_MARKER_EMAIL, DemoLogin
from web.demo.erp import erp
from web.demo.history import history
from web.demo.sales import sales
from web.demo.story import DemoServices, Story
from web.demo.today import today

__all__ = ["DemoLogin", "DemoResult", "DemoServices", "is_empty", "load_demo"]


@dataclass(frozen=True)
class DemoResult:
    logins: list[DemoLogin]
    contacts: int
    conversations: int
    leads: int


async def is_empty(session: AsyncSession) -> bool:
    """No operator exists yet: a fresh installation."""
    return await session.scalar(select(Operator.id).limit(1)) is None


async def load_demo(session: AsyncSession, services: DemoServices | None = None) -> DemoResult:
    """Load the demo into the caller's transaction; Conflict if it is there already.

    `services` default to the built-in channels with attachments in memory (tests, tools);
    `omnicrm demo` passes the installation's (`DemoServices.for_settings`)."""
    if await session.scalar(select(Operator.id).where(Operator.email == DEMO_MARKER_EMAIL)):
        raise Conflict(
            f"demo data is loaded already (operator {DEMO_MARKER_EMAIL} exists); "
            "load it into an empty database"
        )
    services = services or DemoServices.in_memory()
    now = utcnow()
    story_clock = clock.ManualClock(now)
    with channels.installed(services.registry.facts()), clock.using(story_clock):
        story = Story(session, services, now, story_clock)
        logins = await story.team()
        await story.queues_forms_and_mailboxes()
        await story.account()
        await history(story)
        await sales(story)
        await today(story)
        await erp(story)
        story.at(now)
        await canned_responses(story)
        await story.settle_timestamps()
        await story.presence()
        await story.lead_rules()
    return DemoResult(
        logins=logins,
        contacts=len(story.contact_ids),
        conversations=len(story.conversation_ids),
        leads=len(story.lead_ids),
    )


async def canned_responses(story: Story) -> None:
    """Shared answers for everyone, and a few of the operators' own."""
    for title, shortcut, body in (
        (
            "Greeting",
            "hello",
            "Hello {{contact.first_name}},\n\nthank you for getting in touch. ",
        ),
        (
            "Where is my order",
            "tracking",
            "Hi {{contact.first_name}}, your order is on its way: the tracking link is in "
            "your shipping confirmation. Let me know if it has not arrived by Friday.\n\n"
            "Best regards, {{operator.first_name}}",
        ),
        (
            "Replacement on its way",
            "replace",
            "Hi {{contact.first_name}}, I am sorry about that! A replacement is on its way "
            "today; there is no need to send the damaged item back.\n\n"
            "{{operator.name}}",
        ),
        (
            "Closing",
            "bye",
            "Is there anything else I can do for you? If not, I will close this "
            "conversation (#{{conversation.id}}); just reply to open it again.",
        ),
    ):
        await create_canned(
            story.session, CLI, title=title, shortcut=shortcut, body=body, shared=True
        )
    # The knowledge base: a public article in three languages (sent as a link to its help
    # page) and an internal one for the team.
    for language, title, body in (
        (
            "en",
            "Returning an item",
            "You can return any item within 30 days.\n\nPrint the return label from your "
            "account (Orders, then Return), pack the item and drop the parcel at any post "
            "office. The refund reaches your card within 5 working days of our receiving it.",
        ),
        (
            "ru",
            "Как вернуть товар",
            "Любой товар можно вернуть в течение 30 дней.\n\n"
            "Распечатайте этикетку возврата "
            "в личном кабинете (Заказы, затем Возврат), упакуйте товар и сдайте посылку в "
            "любом почтовом отделении. Деньги вернутся на карту в течение 5 рабочих дней.",
        ),
        (
            "de",
            "Artikel zurücksenden",
            "Sie können jeden Artikel innerhalb von 30 Tagen zurücksenden.\n\nDrucken Sie das "
            "Rücksendeetikett in Ihrem Konto aus (Bestellungen, dann Rücksendung), verpacken "
            "Sie den Artikel und geben Sie das Paket bei der Post ab. Die Erstattung erfolgt "
            "innerhalb von 5 Werktagen nach Eingang.",
        ),
    ):
        await create_article(
            story.session,
            CLI,
            slug="returns",
            language=language,
            title=title,
            body=body,
            tags=["returns", "refund"],
            visibility=ArticleVisibility.PUBLIC,
        )
    await create_article(
        story.session,
        CLI,
        slug="courier-cutoff",
        language="en",
        title="Courier cut-off times",
        body="Orders confirmed before 14:00 leave the warehouse the same day; later ones the "
        "next working day. Saturday orders leave on Monday.",
        tags=["shipping", "delivery"],
    )
    for who, title, shortcut, body in (
        ("anna", "Polite Polish greeting", "dzien-dobry", "Dzień dobry {{contact.name}},\n\n"),
        (
            "luis",
            "Quote follow-up",
            "followup",
            "Hi {{contact.first_name}}, did you have a chance to look at our proposal? "
            "I am happy to go through it on a call.\n\nLuis",
        ),
    ):
        await create_canned(
            story.session, story.actor(who), title=title, shortcut=shortcut, body=body
        )
