"""Demo data: a small contact center with a few weeks of history, for a first look.

Everything goes through the same services the product uses (ingest, conversations, leads,
canned responses, mentions, read markers), then the demo's timestamps are moved into the past
so the history reads like one. The content is fixed; only the operators' passwords are random.

Besides weeks of history, the last hours are a busy day, so that the agent console and the
supervisor monitor have something to show: customers waiting in the queues, answers inside and
outside the first-response targets (SLA_MINUTES, measured from when a conversation entered its
queue), an abandoned conversation, a mention, canned responses, a likely duplicate contact,
and the team's presence. The routing engine is not needed for any of it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, channels, conversations, inbox
from core.audit import CLI, Actor
from core.canned import create_canned
from core.contacts import ContactChanges, update_contact
from core.errors import Conflict
from core.forms import create_form
from core.identity import Address
from core.ingest import InboundEvent, IngestResult, LeadRequest, ingest
from core.leads import LeadChanges, update_lead
from core.models import (
    Account,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    IdentityKind,
    Interaction,
    InteractionKind,
    Lead,
    LeadStage,
    LegalEntity,
    Notification,
    Operator,
    OutboxStatus,
    Presence,
    Queue,
    Role,
    RoutingSetting,
    WebForm,
    utcnow,
)
from core.operators import create_operator, set_presence
from core.queues import create_queue, set_members

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE
WHATSAPP = IdentityKind.WHATSAPP


@dataclass(frozen=True)
class DemoLogin:
    role: str
    name: str
    email: str
    password: str


@dataclass(frozen=True)
class DemoResult:
    logins: list[DemoLogin]
    contacts: int
    conversations: int
    leads: int


@dataclass(frozen=True)
class _Member:
    role: Role
    name: str
    email: str
    skills: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)


TEAM = (
    _Member(Role.ADMIN, "Maria Keller", "admin@example.com", languages={"en": 100, "de": 100}),
    _Member(
        Role.SUPERVISOR,
        "Tom Becker",
        "supervisor@example.com",
        skills={"support": 90, "sales": 70},
        languages={"en": 100, "de": 100},
        capacity={"voice": 1, "messaging": 5, "email": 20},
    ),
    _Member(
        Role.OPERATOR,
        "Anna Novak",
        "anna@example.com",
        skills={"support": 80, "returns": 70},
        languages={"en": 100, "pl": 100, "de": 60},
        capacity={"voice": 1, "messaging": 4, "email": 15},
    ),
    _Member(
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
# First-response due times are set for the conversations of the last day only.
SLA_HISTORY = timedelta(days=1)


async def is_empty(session: AsyncSession) -> bool:
    """No operator exists yet: a fresh installation."""
    return await session.scalar(select(Operator.id).limit(1)) is None


async def load_demo(session: AsyncSession) -> DemoResult:
    """Load the demo into the caller's transaction; Conflict if it is there already."""
    if await session.scalar(select(Operator.id).where(Operator.email == DEMO_MARKER_EMAIL)):
        raise Conflict(
            f"demo data is loaded already (operator {DEMO_MARKER_EMAIL} exists); "
            "load it into an empty database"
        )
    story = _Story(session, utcnow())
    logins = await story.team()
    await story.queues_and_forms()
    await story.account()
    await story.history()
    await story.today()
    await story.canned_responses()
    await story.settle_timestamps()
    await story.presence()
    await story.lead_rules()
    return DemoResult(
        logins=logins,
        contacts=len(story.contact_ids),
        conversations=len(story.conversation_ids),
        leads=len(story.lead_ids),
    )


class _Story:
    """The demo's records, told in the order they happened."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session = session
        self.now = now
        self.operators: dict[str, Operator] = {}
        self.queues: dict[str, Queue] = {}
        self.forms: dict[str, WebForm] = {}
        self.legal_entities: dict[str, LegalEntity] = {}
        self.contact_ids: set[int] = set()
        self.conversation_ids: set[int] = set()
        self.lead_ids: set[int] = set()
        # Conversations whose current wait began later than their first message.
        self.waiting_since: dict[int, datetime] = {}

    def ago(self, days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours, minutes=minutes)

    async def team(self) -> list[DemoLogin]:
        logins = []
        for member in TEAM:
            password = secrets.token_urlsafe(12)
            operator = await create_operator(
                self.session,
                CLI,
                email=member.email,
                name=member.name,
                role=member.role,
                password=password,
                skills=member.skills,
                languages=member.languages,
                capacity=member.capacity,
            )
            self.operators[member.name.split()[0].lower()] = operator
            logins.append(DemoLogin(str(member.role), member.name, member.email, password))
        return logins

    async def queues_and_forms(self) -> None:
        ops = self.operators
        for name, description, members in (
            ("Support", "Questions, orders, returns and complaints", ("tom", "anna", "luis")),
            ("Sales", "Quotes and new business", ("tom", "luis")),
        ):
            queue = await create_queue(
                self.session, CLI, name=name, description=description, config=QUEUE_CONFIG[name]
            )
            await set_members(self.session, CLI, queue.id, [ops[key].id for key in members])
            self.queues[name] = queue
        self.forms["contact"] = await create_form(
            self.session,
            CLI,
            slug="contact",
            title="Contact us",
            queue_id=self.queues["Support"].id,
        )
        self.forms["quote"] = await create_form(
            self.session,
            CLI,
            slug="quote",
            title="Request a quote",
            queue_id=self.queues["Sales"].id,
            create_lead=True,
            required_fields=("name", "email", "message"),
        )

    async def account(self) -> None:
        account = Account(name="Nordwind Logistics", created_at=self.ago(days=400))
        self.session.add(account)
        await self.session.flush()
        for key, name, erp_ref in (
            ("de", "Nordwind Logistics GmbH", "C-10042"),
            ("nl", "Nordwind Logistics B.V.", "C-20017"),
        ):
            entity = LegalEntity(account_id=account.id, name=name, erp_ref=erp_ref)
            self.session.add(entity)
            self.legal_entities[key] = entity
        await self.session.flush()
        await audit.record(
            self.session, CLI, "account.create", "account", account.id, {"name": account.name}
        )

    # --- building blocks -------------------------------------------------------------------

    async def inbound(
        self,
        when: datetime,
        channel: str,
        external_id: str,
        addresses: list[Address],
        text: str,
        *,
        name: str = "",
        subject: str = "",
        queue: str | None = None,
        kind: InteractionKind = InteractionKind.MESSAGE,
        **extra: Any,
    ) -> IngestResult:
        result = await ingest(
            self.session,
            InboundEvent(
                channel=channel,
                external_id=f"demo-{external_id}",
                addresses=addresses,
                kind=kind,
                display_name=name,
                subject=subject,
                text=text,
                occurred_at=when,
                queue_id=self.queues[queue].id if queue else None,
                **extra,
            ),
        )
        self.contact_ids.add(result.contact_id)
        self.conversation_ids.add(result.conversation_id)
        if result.lead_id is not None:
            self.lead_ids.add(result.lead_id)
            lead = await self.session.get(Lead, result.lead_id)
            if lead is not None:
                lead.created_at = when
        return result

    async def form(
        self,
        when: datetime,
        slug: str,
        submission: str,
        *,
        name: str,
        email: str,
        message: str,
        phone: str | None = None,
        fields: dict[str, str] | None = None,
        marketing: dict[str, str] | None = None,
    ) -> IngestResult:
        """A web form submission, as the web-form channel hands it to ingest."""
        form = self.forms[slug]
        custom = fields or {}
        tracking = marketing or {}
        addresses = [Address(EMAIL, email)] + ([Address(PHONE, phone)] if phone else [])
        queue = next(name for name, queue in self.queues.items() if queue.id == form.queue_id)
        return await self.inbound(
            when,
            "webform",
            f"{slug}:{submission}",
            addresses,
            message,
            name=name,
            subject=form.title,
            queue=queue,
            kind=InteractionKind.FORM,
            meta={
                "form": {"id": form.id, "slug": slug},
                "fields": custom,
                "marketing": tracking,
            },
            thread_key=f"form:{slug}",
            contact_fields=custom,
            marketing={"channel": "webform", "form": slug, **tracking},
            lead=LeadRequest(source=f"form:{slug}", marketing=tracking)
            if form.create_lead
            else None,
        )

    def actor(self, who: str) -> Actor:
        operator = self.operators[who]
        return Actor(f"operator:{operator.email}", Role(operator.role), operator.id)

    @staticmethod
    def can_answer(channel: str) -> bool:
        facts = channels.catalog().get(channels.catalog().reply_channel(channel))
        return facts is not None and facts.can_send

    async def reply(self, when: datetime, who: str, conversation_id: int, text: str) -> None:
        """An operator's answer, delivered back then (so the outbox will not send it again)."""
        conversation = await self.session.get(Conversation, conversation_id)
        first_response = conversation is not None and conversation.first_response_at is None
        if conversation is not None and not self.can_answer(conversation.channel):
            # A channel this server does not run (SMS, WhatsApp without their channel): the
            # history keeps the answer given back then, with nothing to send now.
            self.session.add(
                Interaction(
                    conversation_id=conversation.id,
                    contact_id=conversation.contact_id,
                    kind=InteractionKind.MESSAGE,
                    direction=Direction.OUT,
                    channel=conversation.channel,
                    text=text,
                    operator_id=self.operators[who].id,
                    occurred_at=when,
                    created_at=when,
                )
            )
        else:
            message, item = await conversations.reply(self.session, CLI, conversation_id, text=text)
            message.occurred_at = message.created_at = when
            message.operator_id = self.operators[who].id
            item.status = OutboxStatus.SENT
            item.attempts = 1
            item.provider_id = "demo"
            item.created_at = item.next_attempt_at = item.sent_at = when
        if conversation is not None:
            conversation.last_outbound_at = when
            if first_response:
                conversation.first_response_at = when
        await self.session.flush()

    async def note(self, when: datetime, who: str, conversation_id: int, text: str) -> None:
        """An internal note by `who`; @mentions in it notify as they would in the console."""
        note = await conversations.add_note(
            self.session, self.actor(who), conversation_id, text=text
        )
        note.occurred_at = note.created_at = when
        await self.session.execute(
            update(Notification)
            .where(Notification.interaction_id == note.id)
            .values(created_at=when)
            .execution_options(synchronize_session=False)
        )
        await self.session.flush()

    async def read(self, when: datetime, who: str, conversation_id: int) -> None:
        """`who` has read the conversation as far as it goes now."""
        marker = await inbox.mark_read(self.session, self.actor(who), conversation_id)
        marker.read_at = when
        await self.session.flush()

    async def assign(self, conversation_id: int, who: str) -> None:
        await conversations.assign(self.session, CLI, conversation_id, self.operators[who].id)

    async def resolve(self, when: datetime, conversation_id: int) -> None:
        conversation = await conversations.set_status(
            self.session, CLI, conversation_id, ConversationStatus.RESOLVED
        )
        conversation.resolved_at = when
        await self.session.flush()

    async def lead(
        self, lead_id: int | None, stage: LeadStage, value: str, currency: str, owner: str
    ) -> None:
        if lead_id is None:
            raise RuntimeError("demo story error: this interaction opened no lead")
        await update_lead(
            self.session,
            CLI,
            lead_id,
            LeadChanges(
                stage=stage,
                value=Decimal(value),
                currency=currency,
                owner_id=self.operators[owner].id,
            ),
        )

    # --- the history ------------------------------------------------------------------------

    async def history(self) -> None:
        await self.liam()
        await self.emma()
        await self.jonas()
        await self.sofia()
        await self.noah()
        await self.ethan()
        await self.olivia()
        await self.mia()

    async def liam(self) -> None:
        liam = [Address(EMAIL, "liam.oconnor@example.net")]
        first = await self.inbound(
            self.ago(days=41),
            "email",
            "liam-1",
            liam,
            "Hi, I requested a password reset for my customer account twice, but the link in "
            "the email says it has expired. Can you help?\n\nLiam",
            name="Liam O'Connor",
            subject="Password reset link does not work",
            queue="Support",
        )
        await self.assign(first.conversation_id, "anna")
        await self.reply(
            self.ago(days=41, hours=-2),
            "anna",
            first.conversation_id,
            "Hi Liam, reset links expire after 30 minutes, and a second request cancels the "
            "first. I have just sent you a fresh link: please use the newest email.\n\nBest, Anna",
        )
        await self.inbound(
            self.ago(days=40),
            "email",
            "liam-2",
            liam,
            "That worked, thank you!",
            subject="Re: Password reset link does not work",
            reply_to_external_ids=["demo-liam-1"],
        )
        await self.resolve(self.ago(days=40, hours=-1), first.conversation_id)
        # Long after the window for reopening: a new conversation starts.
        await self.inbound(
            self.ago(hours=3),
            "email",
            "liam-3",
            liam,
            "Hello, I am moving next week. Could you change the delivery address of my open "
            "order 10077 to 14 Harbour Street, Dublin?\n\nThanks, Liam",
            subject="Change of delivery address",
            queue="Support",
        )

    async def emma(self) -> None:
        form = await self.form(
            self.ago(days=3),
            "contact",
            "emma-1",
            name="Emma Schultz",
            email="emma.schultz@example.org",
            phone="+1 415 555 0134",
            message="Hello, the blender I bought (order 10042) stopped working after two "
            "weeks. Can I get a replacement?",
            fields={"order_number": "10042"},
            marketing={
                "utm_source": "google",
                "utm_medium": "cpc",
                "utm_campaign": "spring-sale",
                "referrer": "https://www.google.com/",
            },
        )
        await self.assign(form.conversation_id, "anna")
        await self.note(
            self.ago(days=3, hours=-1),
            "anna",
            form.conversation_id,
            "Order 10042 is within the 30-day window. Asked the warehouse for a replacement unit.",
        )
        await self.reply(
            self.ago(days=3, hours=-1.5),
            "anna",
            form.conversation_id,
            "Hi Emma, I am sorry the blender failed so soon. We will send you a replacement "
            "this week. Could you tell us the serial number on the bottom of the base?\n\n"
            "Best regards, Anna",
        )
        email = await self.inbound(
            self.ago(days=2),
            "email",
            "emma-2",
            [Address(EMAIL, "emma.schultz@example.org")],
            "Hi Anna, the serial number is BX-2291-0457. Thanks for the quick help!\n\nEmma",
            subject="Re: Contact us",
            queue="Support",
        )
        await self.assign(email.conversation_id, "anna")
        await self.reply(
            self.ago(days=2, hours=-1),
            "anna",
            email.conversation_id,
            "Thank you, Emma! The replacement ships today with DHL, tracking number "
            "00340434161234567890. Please let us know when it has arrived.\n\nAnna",
        )
        await self.read(self.ago(days=2, hours=-1), "anna", email.conversation_id)
        await conversations.set_status(
            self.session, CLI, email.conversation_id, ConversationStatus.PENDING
        )

    async def jonas(self) -> None:
        email, phone = "jonas.weber@nordwind-logistics.example", "+49 40 32901177"
        erp = await self.inbound(
            self.ago(days=20),
            "api",
            "erp-SO-4711",
            [Address(EMAIL, email), Address(PHONE, phone)],
            "Sales order SO-4711 confirmed: 12 pallets of stretch film, delivery in about "
            "three weeks.",
            name="Jonas Weber",
            subject="ERP: order SO-4711 confirmed",
            kind=InteractionKind.EVENT,
            queue="Sales",
            meta={"source": "erp", "order": "SO-4711"},
        )
        # A notification that needs no answer; the field visit later starts a new thread.
        await self.resolve(self.ago(days=20), erp.conversation_id)
        await update_contact(
            self.session,
            CLI,
            erp.contact_id,
            ContactChanges(
                priority_tier="vip",
                account_id=self.legal_entities["de"].account_id,
                language="de",
                tags=["key-account"],
                custom_fields={"job_title": "Head of Purchasing", "erp_ref": "C-10042"},
            ),
        )
        visit = await self.inbound(
            self.ago(days=7),
            "api",
            "field-visit-881",
            [Address(EMAIL, email)],
            "Field visit: Nordwind plans a second warehouse in Rotterdam and wants two pallet "
            "wrapping machines with a service contract for it.",
            subject="Field sales: visit report",
            kind=InteractionKind.CALL,
            queue="Sales",
            meta={"source": "field-sales-app", "visited_by": "luis@example.com"},
            lead=LeadRequest(source="api:field-sales"),
        )
        await self.lead(visit.lead_id, LeadStage.QUALIFIED, "52000", "EUR", "luis")
        await self.assign(visit.conversation_id, "luis")
        question = await self.inbound(
            self.ago(days=2),
            "email",
            "jonas-1",
            [Address(EMAIL, email)],
            "Hello, can you confirm the delivery date of our PO 4711 (your order SO-4711)? "
            "Our warehouse needs the goods before Friday.\n\nBest regards\nJonas Weber\n"
            "Head of Purchasing, Nordwind Logistics GmbH",
            subject="Delivery date for PO 4711",
            queue="Support",
        )
        await self.assign(question.conversation_id, "anna")
        await self.reply(
            self.ago(days=2, hours=-2),
            "anna",
            question.conversation_id,
            "Hello Mr Weber, SO-4711 left our warehouse yesterday and is due on Thursday. "
            "I will send you the tracking link as soon as the carrier confirms it.\n\n"
            "Kind regards, Anna Novak",
        )
        await self.read(self.ago(days=2, hours=-2), "anna", question.conversation_id)
        chat = await self.inbound(
            self.ago(minutes=40),
            "whatsapp",
            "jonas-wa-1",
            [Address(WHATSAPP, phone), Address(PHONE, phone)],
            "Any news on the tracking link? Our truck slot is booked for Thursday 9:00.",
            queue="Support",
        )
        await self.assign(chat.conversation_id, "anna")
        await self.note(
            self.ago(minutes=30),
            "tom",
            chat.conversation_id,
            "@anna VIP: Nordwind is our largest logistics account. Please answer within the hour.",
        )

    async def sofia(self) -> None:
        sofia = [Address(EMAIL, "sofia.devries@nordwind-logistics.example")]
        first = await self.inbound(
            self.ago(days=6),
            "email",
            "sofia-1",
            sofia,
            "Dear team, invoice INV-2291 shows the VAT number of our German company. Please "
            "reissue it to Nordwind Logistics B.V., VAT NL859012345B01.\n\n"
            "Kind regards, Sofia de Vries, Finance",
            name="Sofia de Vries",
            subject="Invoice INV-2291: wrong VAT number",
            queue="Support",
        )
        await update_contact(
            self.session,
            CLI,
            first.contact_id,
            ContactChanges(
                account_id=self.legal_entities["nl"].account_id,
                language="nl",
                custom_fields={"erp_ref": "C-20017"},
            ),
        )
        await self.assign(first.conversation_id, "luis")
        await self.reply(
            self.ago(days=6, hours=-3),
            "luis",
            first.conversation_id,
            "Dear Ms de Vries, you are right, sorry for the mix-up. Our accounting team has "
            "reissued the invoice as INV-2291-C to Nordwind Logistics B.V.; it reaches you "
            "by email today.\n\nBest regards, Luis García",
        )
        await self.inbound(
            self.ago(days=5),
            "email",
            "sofia-2",
            sofia,
            "Received, thank you.",
            subject="Re: Invoice INV-2291: wrong VAT number",
            reply_to_external_ids=["demo-sofia-1"],
        )
        await self.resolve(self.ago(days=5, hours=-1), first.conversation_id)

    async def noah(self) -> None:
        noah = [Address(PHONE, "+1 212 555 0187")]
        first = await self.inbound(
            self.ago(days=1),
            "sms",
            "noah-1",
            noah,
            "Hi, is your store on 5th Avenue open this Sunday?",
            queue="Support",
        )
        # A text message carries no name; the operator asked for it.
        await update_contact(
            self.session, CLI, first.contact_id, ContactChanges(display_name="Noah Kim")
        )
        await self.reply(
            self.ago(days=1, hours=-0.5),
            "luis",
            first.conversation_id,
            "Hi Noah, yes: on Sundays we are open from 10am to 6pm. See you there!",
        )
        again = await self.inbound(
            self.ago(hours=2),
            "sms",
            "noah-2",
            noah,
            "Great, thanks! One more thing: do you also repair espresso machines? Mine is leaking.",
        )
        # Answered yesterday; waiting again since this message.
        self.waiting_since[again.conversation_id] = self.ago(hours=2)

    async def ethan(self) -> None:
        form = await self.form(
            self.ago(days=9),
            "quote",
            "ethan-1",
            name="Ethan Clarke",
            email="ethan.clarke@example.net",
            phone="+44 20 7946 0321",
            message="Please send us a quote for a three-year service contract covering our "
            "25 coffee machines at four London sites.",
            fields={"company": "Clarke & Hale Cafés"},
            marketing={"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "may"},
        )
        await self.assign(form.conversation_id, "luis")
        await self.note(
            self.ago(days=9, hours=-2),
            "luis",
            form.conversation_id,
            "Called Ethan: he needs on-site service within 48 hours; two sites have older "
            "machines that may need replacing in year two.",
        )
        await self.reply(
            self.ago(days=8),
            "luis",
            form.conversation_id,
            "Hi Ethan, thanks for the call. As promised, our proposal for the three-year "
            "contract: £9,600 per year, parts and 48-hour on-site service included. The full "
            "document follows by email.\n\nBest, Luis",
        )
        await self.lead(form.lead_id, LeadStage.PROPOSAL, "28800", "GBP", "luis")
        chat = await self.inbound(
            self.ago(days=4),
            "whatsapp",
            "ethan-wa-1",
            [Address(WHATSAPP, "+44 20 7946 0321"), Address(PHONE, "+44 20 7946 0321")],
            "Hi Luis, we are reviewing the proposal with our finance team and will get back "
            "to you next week.",
            queue="Sales",
        )
        await self.assign(chat.conversation_id, "luis")
        await conversations.set_status(
            self.session,
            CLI,
            chat.conversation_id,
            ConversationStatus.SNOOZED,
            snoozed_until=self.now + timedelta(days=3),
        )

    async def olivia(self) -> None:
        form = await self.form(
            self.ago(days=25),
            "quote",
            "olivia-1",
            name="Olivia Martin",
            email="olivia.martin@example.org",
            message="We need 200 notebooks with our logo for a conference in June. Can you do "
            "it for under $2,500?",
            fields={"company": "Brightside Events"},
            marketing={"utm_source": "google", "utm_medium": "organic"},
        )
        await self.assign(form.conversation_id, "luis")
        await self.reply(
            self.ago(days=24),
            "luis",
            form.conversation_id,
            "Hi Olivia, yes: 200 A5 notebooks with your logo come to $2,350 including "
            "delivery. Shall I book the order?\n\nLuis",
        )
        answer = await self.inbound(
            self.ago(days=23),
            "email",
            "olivia-2",
            [Address(EMAIL, "olivia.martin@example.org")],
            "Yes please, go ahead! Our purchase order follows today.\n\nOlivia",
            subject="Re: Request a quote",
            queue="Sales",
        )
        await self.assign(answer.conversation_id, "luis")
        await self.reply(
            self.ago(days=23, hours=-1),
            "luis",
            answer.conversation_id,
            "Booked! The notebooks will be with you by 2 June.\n\nLuis",
        )
        await self.lead(form.lead_id, LeadStage.WON, "2350", "USD", "luis")
        await self.resolve(self.ago(days=22), form.conversation_id)
        await self.resolve(self.ago(days=22), answer.conversation_id)

    async def mia(self) -> None:
        await self.form(
            self.ago(hours=2),
            "quote",
            "mia-1",
            name="Mia Rossi",
            email="mia.rossi@example.org",
            phone="+39 02 8901 2345",
            message="We are opening a new office in Milan and need a quote for 40 "
            "height-adjustable desks and 40 chairs, delivered in September.",
            fields={"company": "Studio Rossi Architetti"},
            marketing={
                "utm_source": "linkedin",
                "utm_medium": "social",
                "utm_campaign": "office-2025",
                "referrer": "https://www.linkedin.com/",
            },
        )

    # --- today ------------------------------------------------------------------------------

    async def today(self) -> None:
        """The last hours: a busy day in Support and some sales work."""
        anna, luis, tom = "anna", "luis", "tom"
        hannah = await self.inbound(
            self.ago(hours=5),
            "email",
            "hannah-1",
            [Address(EMAIL, "hannah.fischer@example.net")],
            "Hello, my parcel (order 10311) arrived today with a crushed corner and the "
            "teapot inside is broken. Photos attached.\n\nHannah Fischer",
            html="<p>Hello,</p><p>my parcel (order <b>10311</b>) arrived today with a crushed "
            "corner and the teapot inside is broken. Photos attached.</p>"
            '<p style="color:#555">Hannah Fischer</p>'
            '<img src="https://tracker.example/open.gif" width="1" height="1">',
            name="Hannah Fischer",
            subject="Broken teapot in my parcel",
            queue="Support",
        )
        await self.assign(hannah.conversation_id, anna)
        await self.reply(
            self.ago(hours=4, minutes=35),
            anna,
            hannah.conversation_id,
            "Hi Hannah, I am sorry about the teapot! A new one is on its way today; there is "
            "no need to send the broken one back.\n\nAnna",
        )
        await self.note(
            self.ago(hours=4, minutes=30),
            anna,
            hannah.conversation_id,
            "@tom second parcel this week damaged by the same courier. Shall we raise it "
            "with them?",
        )
        await self.resolve(self.ago(hours=4), hannah.conversation_id)

        oliver = await self.inbound(
            self.ago(hours=4, minutes=30),
            "sms",
            "oliver-1",
            [Address(PHONE, "+1 646 555 0142")],
            "Do you deliver on Saturdays? I need a desk chair by this weekend.",
            name="Oliver Brown",
            queue="Support",
        )
        await self.assign(oliver.conversation_id, luis)
        # Well past the hour: a first response outside the target.
        await self.reply(
            self.ago(hours=2, minutes=55),
            luis,
            oliver.conversation_id,
            "Hi Oliver, yes: order by Thursday 6pm and choose Saturday delivery at checkout.",
        )
        await self.resolve(self.ago(hours=2, minutes=30), oliver.conversation_id)

        chloe_address = [Address(WHATSAPP, "+33 6 12 34 56 78"), Address(PHONE, "+33612345678")]
        chloe = await self.inbound(
            self.ago(hours=4),
            "whatsapp",
            "chloe-1",
            chloe_address,
            "Bonjour! Can I still change the colour of order 10322 to blue?",
            name="Chloé Dubois",
            queue="Support",
        )
        await self.assign(chloe.conversation_id, anna)
        await self.reply(
            self.ago(hours=3, minutes=50),
            anna,
            chloe.conversation_id,
            "Bonjour Chloé, yes, I have changed it to blue. It ships tomorrow.",
        )
        await self.read(self.ago(hours=3, minutes=50), anna, chloe.conversation_id)
        await self.inbound(
            self.ago(minutes=20),
            "whatsapp",
            "chloe-2",
            chloe_address,
            "Merci! And could you add a second cushion in the same colour?",
        )

        lucas = await self.form(
            self.ago(hours=3, minutes=30),
            "contact",
            "lucas-1",
            name="Lucas Silva",
            email="lucas.silva@example.com",
            message="Hi, the assembly instructions for the bookshelf BK-200 are missing a "
            "page (steps 7-9). Can you send them?",
            fields={"order_number": "10290"},
        )
        await self.assign(lucas.conversation_id, anna)
        await self.reply(
            self.ago(hours=2, minutes=50),
            anna,
            lucas.conversation_id,
            "Hi Lucas, here are steps 7 to 9 as a PDF. Does that get you going?\n\nAnna",
        )
        await self.read(self.ago(hours=2, minutes=50), anna, lucas.conversation_id)
        await conversations.set_status(
            self.session, CLI, lucas.conversation_id, ConversationStatus.PENDING
        )

        grace = [Address(EMAIL, "grace.kim@example.org")]
        question = await self.inbound(
            self.ago(hours=2, minutes=30),
            "email",
            "grace-1",
            grace,
            "Where can I download the invoice for order 10301?",
            name="Grace Kim",
            subject="Invoice for order 10301",
            queue="Support",
        )
        await self.inbound(
            self.ago(hours=1, minutes=15),
            "email",
            "grace-2",
            grace,
            "Never mind, I found it in my account. Thanks!",
            subject="Re: Invoice for order 10301",
            reply_to_external_ids=["demo-grace-1"],
        )
        # The customer helped herself before anyone answered: abandoned.
        await self.resolve(self.ago(hours=1), question.conversation_id)

        isla = await self.inbound(
            self.ago(hours=1, minutes=50),
            "email",
            "isla-1",
            [Address(EMAIL, "isla.walker@example.co.uk")],
            "Hello, I was charged twice for order 10317. Could you refund one of the "
            "payments?\n\nIsla Walker",
            name="Isla Walker",
            subject="Charged twice for order 10317",
            queue="Support",
        )
        await self.assign(isla.conversation_id, anna)
        await self.reply(
            self.ago(minutes=45),
            anna,
            isla.conversation_id,
            "Hello Isla, you are right, sorry! The second payment is refunded; it shows on "
            "your statement within 3 to 5 days.\n\nAnna",
        )
        await self.read(self.ago(minutes=45), anna, isla.conversation_id)

        emma = await self.inbound(
            self.ago(hours=1, minutes=30),
            "email",
            "emma-3",
            [Address(EMAIL, "emma.schultz@example.com")],
            "Hi, has the replacement blender shipped yet? I wrote from my other address "
            "before.\n\nEmma Schultz",
            name="Emma Schultz",
            subject="Replacement blender",
            queue="Support",
        )
        # A second address of the Emma of three days ago: a new contact, for now.
        self.waiting_since[emma.conversation_id] = self.ago(hours=1, minutes=30)

        leo = await self.inbound(
            self.ago(hours=1, minutes=20),
            "sms",
            "leo-1",
            [Address(PHONE, "+1 312 555 0199")],
            "Hi, is the oak dining table back in stock?",
            name="Leo Rossi",
            queue="Support",
        )
        await self.assign(leo.conversation_id, luis)
        await self.reply(
            self.ago(hours=1, minutes=5),
            luis,
            leo.conversation_id,
            "Hi Leo, it is back next Tuesday. Shall I reserve one for you?",
        )
        await self.resolve(self.ago(minutes=50), leo.conversation_id)

        ben = await self.form(
            self.ago(hours=1),
            "quote",
            "ben-1",
            name="Ben Carter",
            email="ben.carter@example.com",
            phone="+1 206 555 0117",
            message="We need 12 standing desks for our new team room. What would that cost "
            "with delivery to Seattle?",
            fields={"company": "Carter Analytics"},
            marketing={"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "desks"},
        )
        await self.assign(ben.conversation_id, luis)
        await self.reply(
            self.ago(minutes=30),
            luis,
            ben.conversation_id,
            "Hi Ben, 12 standing desks come to $6,840 including delivery to Seattle. I have "
            "sent the quote by email.\n\nLuis",
        )

        sophie = await self.inbound(
            self.ago(minutes=50),
            "email",
            "sophie-1",
            [Address(EMAIL, "sophie.martin@example.fr")],
            "Bonjour, we are furnishing 3 meeting rooms in Lyon. Do you offer volume "
            "discounts?\n\nSophie Martin",
            name="Sophie Martin",
            subject="Volume discount for meeting rooms",
            queue="Sales",
        )
        await self.assign(sophie.conversation_id, tom)

        await self.inbound(
            self.ago(minutes=25),
            "whatsapp",
            "ava-1",
            [Address(WHATSAPP, "+44 7700 900123")],
            "Hi, my sofa delivery was meant to come today between 8 and 12 but nobody came.",
            name="Ava Thompson",
            queue="Support",
        )
        await self.inbound(
            self.ago(minutes=15),
            "sms",
            "max-1",
            [Address(PHONE, "+49 151 23456789")],
            "Hallo, can I pick up my order 10330 at the Hamburg store instead?",
            name="Max Müller",
            queue="Support",
        )

    async def canned_responses(self) -> None:
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
                self.session, CLI, title=title, shortcut=shortcut, body=body, shared=True
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
                self.session, self.actor(who), title=title, shortcut=shortcut, body=body
            )

    async def lead_rules(self) -> None:
        """New leads go to the sales team in turn, ten a day each (docs/routing.md)."""
        sellers = [self.operators[who].id for who in ("tom", "luis")]
        self.session.add(
            RoutingSetting(
                name="lead_rules",
                value={
                    "timezone": "Europe/Berlin",
                    "rules": [
                        {
                            "name": "Web quotes",
                            "sources": ["form:"],
                            "operators": sellers,
                            "daily_quota": 10,
                        },
                    ],
                    "fallback": {"operators": sellers},
                },
            )
        )
        await self.session.flush()

    async def presence(self) -> None:
        """Who is at work right now, and since when."""
        for who, presence, reason, since in (
            ("anna", Presence.AVAILABLE, None, self.ago(hours=5, minutes=10)),
            ("tom", Presence.AVAILABLE, None, self.ago(hours=6)),
            ("luis", Presence.AWAY, "Lunch break", self.ago(minutes=20)),
            ("maria", Presence.OFFLINE, None, self.ago(hours=15)),
        ):
            operator = self.operators[who]
            await set_presence(self.session, operator, presence, reason)
            operator.presence_since = since
        await self.session.flush()

    async def settle_timestamps(self) -> None:
        """Date each conversation and contact by its history instead of by the load."""
        spans = await self.session.execute(
            select(
                Interaction.conversation_id,
                func.min(Interaction.occurred_at),
                func.max(Interaction.occurred_at),
            )
            .where(Interaction.conversation_id.in_(self.conversation_ids))
            .group_by(Interaction.conversation_id)
        )
        queue_names = {queue.id: name for name, queue in self.queues.items()}
        for conversation_id, first, last in spans:
            conversation = await self.session.get(Conversation, conversation_id)
            if conversation is None:
                continue
            conversation.created_at, conversation.updated_at = first, last
            if conversation.queue_id is None:
                continue
            conversation.queue_entered_at = self.waiting_since.get(conversation.id, first)
            target = SLA_MINUTES.get(queue_names.get(conversation.queue_id, ""))
            if target is not None and first >= self.now - SLA_HISTORY:
                conversation.sla_due_at = first + timedelta(minutes=target)
        firsts = await self.session.execute(
            select(Interaction.contact_id, func.min(Interaction.occurred_at))
            .where(Interaction.contact_id.in_(self.contact_ids))
            .group_by(Interaction.contact_id)
        )
        for contact_id, first in firsts:
            contact = await self.session.get(Contact, contact_id)
            if contact is not None:
                contact.created_at = contact.updated_at = first
        await self.session.flush()
