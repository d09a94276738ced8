"""The demo's sales: ten weeks of quote requests from campaigns, each answered by the sales
team and led through the pipeline (won, lost with a reason, still open with a next step), and a
second pipeline for repeat sales to existing customers; the board and the sales reports have
something to show."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from core.audit import CLI
from core.leads import LeadChanges, NewLead, create_lead, update_lead
from core.models import Identity, IdentityKind, StageOutcome
from core.pipelines import PipelineSpec, StageSpec, create_pipeline
from web.demo.story import Story


@dataclass(frozen=True)
class Quote:
    name: str
    email: str
    company: str
    message: str
    days_ago: float
    owner: str
    value: str
    currency: str
    campaign: tuple[str, str, str]
    # (stage, days ago, reason when lost)
    moves: tuple[tuple[str, float, str | None], ...]


LINKEDIN = ("linkedin", "social", "spring-fair")
GOOGLE = ("google", "cpc", "packaging")
NEWSLETTER = ("newsletter", "email", "may")

QUOTES = (
    Quote(
        "Sofia Marino",
        "sofia@marino-caffe.example",
        "Marino Caffè",
        "Two espresso lines for our new roastery, installed by July.",
        68,
        "luis",
        "18400",
        "EUR",
        LINKEDIN,
        (("qualified", 66, None), ("proposal", 60, None), ("won", 52, None)),
    ),
    Quote(
        "Pieter de Vries",
        "pieter@devries-bakkerij.example",
        "De Vries Bakkerij",
        "Quote for a dough sheeter and a service plan, please.",
        61,
        "tom",
        "7200",
        "EUR",
        GOOGLE,
        (("qualified", 59, None), ("lost", 50, "Chose a cheaper local supplier")),
    ),
    Quote(
        "Hannah Schmid",
        "h.schmid@alpenhof.example",
        "Hotel Alpenhof",
        "We need eight coffee machines for the hotel bars.",
        54,
        "luis",
        "12800",
        "EUR",
        NEWSLETTER,
        (("qualified", 52, None), ("proposal", 47, None), ("won", 38, None)),
    ),
    Quote(
        "Oliver Grant",
        "oliver@grant-foods.example",
        "Grant Foods",
        "Pricing for a packaging line, 40 units per minute.",
        47,
        "tom",
        "64000",
        "GBP",
        GOOGLE,
        (
            ("qualified", 44, None),
            ("proposal", 36, None),
            ("lost", 24, "Project postponed to next year"),
        ),
    ),
    Quote(
        "Marta Kowalska",
        "marta@kowalska-deli.example",
        "Kowalska Deli",
        "A slicer and two vacuum packers for our shop.",
        40,
        "luis",
        "3900",
        "EUR",
        LINKEDIN,
        (("qualified", 39, None), ("won", 33, None)),
    ),
    Quote(
        "Lukas Brandt",
        "lukas@brandt-kantine.example",
        "Brandt Kantinen",
        "Catering equipment for three canteens.",
        33,
        "tom",
        "26500",
        "EUR",
        NEWSLETTER,
        (("qualified", 31, None), ("proposal", 24, None), ("won", 12, None)),
    ),
    Quote(
        "Chloé Martin",
        "chloe@martin-patisserie.example",
        "Pâtisserie Martin",
        "A blast chiller, delivered to Lyon.",
        26,
        "luis",
        "5600",
        "EUR",
        GOOGLE,
        (("lost", 22, "No budget this year"),),
    ),
    Quote(
        "Aiko Tanaka",
        "aiko@tanaka-ramen.example",
        "Tanaka Ramen",
        "Noodle cookers for two restaurants, with training.",
        19,
        "luis",
        "9800",
        "EUR",
        LINKEDIN,
        (("qualified", 17, None), ("proposal", 9, None)),
    ),
    Quote(
        "Liam Walsh",
        "liam@walsh-brewing.example",
        "Walsh Brewing",
        "Canning line quote, 2,000 cans per hour.",
        12,
        "tom",
        "48000",
        "USD",
        GOOGLE,
        (("qualified", 10, None),),
    ),
    Quote(
        "Eva Lindqvist",
        "eva@lindqvist-bageri.example",
        "Lindqvist Bageri",
        "Two deck ovens for the new bakery.",
        4,
        "luis",
        "15200",
        "EUR",
        NEWSLETTER,
        (),
    ),
)

REPEAT_SALES = PipelineSpec(
    name="Repeat sales",
    position=1,
    stages=(
        StageSpec(key="due", name="Renewal due", probability=40),
        StageSpec(
            key="offered",
            name="Offer sent",
            probability=70,
            follow_up_days=5,
            follow_up_note="Ask whether the offer suits them",
        ),
        StageSpec(key="renewed", name="Renewed", probability=100, outcome=StageOutcome.WON),
        StageSpec(key="lapsed", name="Lapsed", probability=0, outcome=StageOutcome.LOST),
    ),
)


async def sales(story: Story) -> None:
    for number, quote in enumerate(QUOTES, start=1):
        source, medium, campaign = quote.campaign
        arrival = await story.form(
            story.ago(days=quote.days_ago),
            "quote",
            f"sales-{number}",
            name=quote.name,
            email=quote.email,
            message=quote.message,
            fields={"company": quote.company},
            marketing={"utm_source": source, "utm_medium": medium, "utm_campaign": campaign},
        )
        if arrival.lead_id is None:
            raise RuntimeError("demo story error: the quote form opened no lead")
        first_name = quote.name.split()[0]
        await story.reply(
            story.ago(days=quote.days_ago - 0.1),
            quote.owner,
            arrival.conversation_id,
            f"Hello {first_name}, thank you for your request. I will prepare an offer and call "
            "you to go through the details.",
        )
        await update_lead(
            story.session,
            CLI,
            arrival.lead_id,
            LeadChanges(
                title=f"{quote.company}: {quote.message.split(',')[0].rstrip('.')}"[:200],
                value=Decimal(quote.value),
                currency=quote.currency,
                owner_id=story.operators[quote.owner].id,
            ),
        )
        for stage, days_ago, reason in quote.moves:
            story.at(story.ago(days=days_ago))
            await update_lead(
                story.session,
                story.actor(quote.owner),
                arrival.lead_id,
                LeadChanges(stage=stage, reason=reason),
            )
        await story.resolve(story.ago(days=quote.days_ago - 0.2), arrival.conversation_id)
    await repeat_sales(story)


async def repeat_sales(story: Story) -> None:
    """Service contracts that come up for renewal: leads for customers the team knows."""
    story.at(story.ago(days=20))
    pipeline = await create_pipeline(story.session, CLI, REPEAT_SALES)
    renewals = (
        (
            "sofia@marino-caffe.example",
            "Marino Caffè: service contract renewal",
            "2400",
            ("offered",),
        ),
        ("h.schmid@alpenhof.example", "Hotel Alpenhof: service contract renewal", "3100", ()),
    )
    for email, title, value, moves in renewals:
        contact_id = await story.session.scalar(
            select(Identity.contact_id).where(
                Identity.kind == IdentityKind.EMAIL, Identity.address == email
            )
        )
        if contact_id is None:
            raise RuntimeError(f"demo story error: no customer writes from {email}")
        lead = await create_lead(
            story.session,
            story.actor("luis"),
            NewLead(
                contact_id=contact_id,
                pipeline_id=pipeline.id,
                title=title,
                value=Decimal(value),
                currency="EUR",
            ),
        )
        story.lead_ids.add(lead.id)
        for stage in moves:
            story.at(story.ago(days=6))
            await update_lead(story.session, story.actor("luis"), lead.id, LeadChanges(stage=stage))
