"""The demo's cast, its set and the building blocks its chapters are told with.

Every record goes through the path the product itself uses: operators, queues (their routing
configuration checked by `routing.setup.create_queue`), forms, mailboxes, canned responses and
the lead rules (`routing.setup.set_rules`) through their services; customers' messages
through their channel (web-form submissions through the web-form channel, email as RFC 5322
messages through the email channel's importer, other systems' interactions through the API
channel); answers through `core.conversations.reply`. The story is told on a manual clock set
to the moment each thing happens, so every timestamp is the one the service itself writes.

One seam: SMS and WhatsApp. No channel of this server reads or sends them yet, so their
customers' messages are ingested as history (`message`) and the answers given back then are
kept as history too (`reply` on a channel that cannot send). Once `channels/twilio` registers
those channels, `reply` answers them through `conversations.reply` like any other (it asks
the channel catalogue), and `message` is the one place to build their input through the
Twilio channel's parser instead.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.accounts import add_account
from channels.api import ApiChannel, ContactIn, InteractionIn, LeadIn
from channels.base import Channel
from channels.email.imap import reference_of
from channels.email.inbound import ImportStatus, import_message
from channels.registry import ChannelRegistry, default_channels
from channels.twilio.voice import store as voice_store
from channels.twilio.voice.parse import CallRequest
from channels.twilio.voice.settings import VoiceNumber
from channels.webform import WebFormChannel
from core import audit, clock, conversations, inbox
from core.audit import CLI, Actor
from core.channel_accounts import AccountView, view_without_secrets
from core.channels import catalog
from core.contacts import ContactChanges, update_contact
from core.credentials import CredentialCipher
from core.forms import create_form
from core.identity import Address, normalize_phone
from core.ingest import InboundEvent, IngestPolicy, IngestResult, ingest
from core.leads import LeadChanges, update_lead
from core.models import (
    Account,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    LeadStage,
    LegalEntity,
    Operator,
    OutboxStatus,
    Presence,
    Queue,
    Role,
    WebForm,
)
from core.operators import create_operator, set_presence
from core.queues import set_members
from core.settings import Settings
from core.storage import AttachmentStore, FilesystemStore, MemoryStore
from routing.setup import LEAD_RULES, create_queue, set_rules
from web.demo.cast import (
    MAILBOXES,
    QUEUE_CONFIG,
    SLA_HISTORY,
    SLA_MINUTES,
    TEAM,
    DemoLogin,
)
from web.demo.mail import Attachment, compose, message_id

ChannelT = TypeVar("ChannelT", bound=Channel)
# The demo's phone line (a number of Twilio's test range).
DEMO_PHONE_NUMBER = "+12125550100"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class DemoServices:
    """What the demo's channels need: the channels the application runs, where attachments
    go, how ingest resolves contacts and threads, the cipher mailbox settings are stored with
    (the demo's mailboxes hold no password)."""

    registry: ChannelRegistry
    store: AttachmentStore
    policy: IngestPolicy
    cipher: CredentialCipher
    # Where the server is reached: the demo's website chat may be shown there (its try page).
    origins: tuple[str, ...] = ("http://127.0.0.1:8080", "http://localhost:8080")

    @classmethod
    def for_settings(cls, settings: Settings) -> DemoServices:
        """The installation's own: what `omnicrm serve` will run with."""
        return cls(
            registry=ChannelRegistry(default_channels()),
            store=FilesystemStore(settings.attachments_dir),
            policy=IngestPolicy(
                default_region=settings.default_region,
                reopen_window=timedelta(days=settings.reopen_window_days),
            ),
            cipher=CredentialCipher.from_settings(settings),
            origins=tuple(
                dict.fromkeys(
                    [
                        f"http://127.0.0.1:{settings.port}",
                        f"http://localhost:{settings.port}",
                        f"http://{settings.host}:{settings.port}",
                        *([_origin(settings.public_url)] if settings.public_url else []),
                    ]
                )
            ),
        )

    @classmethod
    def in_memory(cls) -> DemoServices:
        """For tests and tools: the built-in channels, attachments kept in memory."""
        return cls(
            registry=ChannelRegistry(default_channels()),
            store=MemoryStore(),
            policy=IngestPolicy(),
            cipher=CredentialCipher(secrets.token_urlsafe(32)),
        )


@dataclass(frozen=True)
class Arrival:
    """What a customer's message became."""

    interaction_id: int
    conversation_id: int
    contact_id: int
    lead_id: int | None = None


class Story:
    """The demo's records, told in the order they happened, each at its own time."""

    def __init__(
        self, session: AsyncSession, services: DemoServices, now: datetime, at: clock.ManualClock
    ) -> None:
        self.session = session
        self.services = services
        self.now = now
        self._clock = at
        self.operators: dict[str, Operator] = {}
        self.queues: dict[str, Queue] = {}
        self.forms: dict[str, WebForm] = {}
        self.mailboxes: dict[str, AccountView] = {}
        self.legal_entities: dict[str, LegalEntity] = {}
        self.contact_ids: set[int] = set()
        self.conversation_ids: set[int] = set()
        self.lead_ids: set[int] = set()
        # Conversations whose current wait began later than their first message.
        self.waiting_since: dict[int, datetime] = {}
        self._uids: dict[str, int] = {}
        self._sent_ids: dict[str, str] = {}
        self.phone_account = 0

    def ago(self, days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours, minutes=minutes)

    def at(self, when: datetime) -> datetime:
        """From here on, it is `when`."""
        self._clock.set(when)
        return when

    def channel(self, kind: type[ChannelT]) -> ChannelT:
        """The running channel of this kind (the demo needs the built-in ones)."""
        for channel in self.services.registry.channels:
            if isinstance(channel, kind):
                return channel
        raise RuntimeError(f"the demo needs the {kind.__name__} channel")

    def actor(self, who: str) -> Actor:
        operator = self.operators[who]
        return Actor(f"operator:{operator.email}", Role(operator.role), operator.id)

    # --- the set -----------------------------------------------------------------------------

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

    async def queues_forms_and_mailboxes(self) -> None:
        ops = self.operators
        for name, description, members in (
            ("Support", "Questions, orders, returns and complaints", ("tom", "anna", "luis")),
            ("Sales", "Quotes and new business", ("tom", "luis")),
        ):
            queue = await create_queue(
                self.session,
                CLI,
                name=name,
                description=description,
                config=QUEUE_CONFIG[name],
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
        for name, (address, queue_name) in MAILBOXES.items():
            row = await add_account(
                self.session,
                CLI,
                self.services.registry,
                self.services.cipher,
                channel="email",
                name=name,
                settings={
                    "address": address,
                    "display_name": f"{queue_name} team",
                    "imap_host": "imap.example.com",
                    "imap_user": address,
                    "smtp_host": "smtp.example.com",
                    "smtp_user": address,
                },
                queue_id=self.queues[queue_name].id,
                # Not connected to a server: the demo's mail is imported by the story.
                enabled=False,
            )
            secrets = self.services.registry.account_channel("email").secret_fields
            self.mailboxes[name] = view_without_secrets(row, secrets)
        await self._phone_line()
        # The website chat, to try at /webchat/website/try on this server.
        if self.services.registry.get("webchat") is None:
            return
        await add_account(
            self.session,
            CLI,
            self.services.registry,
            self.services.cipher,
            channel="webchat",
            name="website",
            settings={
                "allowed_origins": list(self.services.origins),
                "title": "Nordwind Support",
                "consent_text": "I agree that Nordwind keeps my details to answer me.",
            },
            queue_id=self.queues["Support"].id,
        )

    async def _phone_line(self) -> None:
        """A Twilio account whose number takes calls (not connected: the demo's calls are
        told through the voice channel's own steps, `call`)."""
        if self.services.registry.get("twilio") is None:
            return
        row = await add_account(
            self.session,
            CLI,
            self.services.registry,
            self.services.cipher,
            channel="twilio",
            name="phone",
            settings={
                "account_sid": "AC" + "d" * 32,
                "auth_token": secrets.token_hex(16),
                "voice_numbers": [
                    {
                        "number": DEMO_PHONE_NUMBER,
                        "greeting": "Thank you for calling Nordwind.",
                        "menu": {
                            "prompt": "For orders and deliveries press 1. For sales press 2.",
                            "options": [
                                {"digit": "1", "speech": ["order"], "label": "Orders"},
                                {
                                    "digit": "2",
                                    "speech": ["sales"],
                                    "label": "Sales",
                                    "queue_id": self.queues["Sales"].id,
                                },
                            ],
                        },
                    }
                ],
            },
            queue_id=self.queues["Support"].id,
            enabled=False,
        )
        self.phone_account = row.id

    async def call(
        self,
        when: datetime,
        number: str,
        *,
        choice: str,
        queue: str,
        waited: timedelta,
        answered_by: str | None = None,
        talked: timedelta = timedelta(0),
    ) -> Arrival:
        """A phone call, through the voice channel's steps: it comes in, the caller picks
        `choice` and waits `waited`; then `answered_by` takes it and they talk `talked`, or
        the caller hangs up (a callback task)."""
        flow = VoiceNumber(number=DEMO_PHONE_NUMBER)
        request = CallRequest(
            call_sid="CA" + secrets.token_hex(16),
            account_sid="AC" + "d" * 32,
            from_number=normalize_phone(number, "US"),
            to_number=DEMO_PHONE_NUMBER,
            status="ringing",
            call_id=None,
            leg=None,
            query={},
        )
        queue_id = self.queues[queue].id
        self.at(when)
        started = await voice_store.begin_inbound(
            self.session, self.phone_account, request, queue_id, self.services.policy, when
        )
        call = started.call
        await voice_store.to_queue(self.session, call, queue_id, choice, when)
        picked_up = self.at(when + waited)
        if answered_by is None:
            await voice_store.ended(
                self.session, call, "completed", int(waited.total_seconds()) + 20, picked_up, flow
            )
        else:
            await self.assign(call.conversation_id or 0, answered_by)
            call.operator_id, call.leg, call.state = self.operators[answered_by].id, 1, "ringing"
            await voice_store.operator_answered(self.session, call, 1, request.call_sid, picked_up)
            over = self.at(picked_up + talked)
            await voice_store.bridge_ended(self.session, call, 1, over, flow.wrap_up_seconds)
            total = int((over - when).total_seconds()) + 20
            await voice_store.ended(self.session, call, "completed", total, over, flow)
            await voice_store.wrap_up_over(self.session, call, over)
        assert call.conversation_id is not None
        assert call.contact_id is not None
        self.conversation_ids.add(call.conversation_id)
        self.contact_ids.add(call.contact_id)
        return Arrival(call.interaction_id or 0, call.conversation_id, call.contact_id)

    async def account(self) -> None:
        """A customer company with two legal entities, each with its customer number in the
        ERP and its VAT number (written as omnicrm keeps it: core/accounts.py)."""
        account = Account(name="Nordwind Logistics", created_at=self.ago(days=400))
        self.session.add(account)
        await self.session.flush()
        for key, name, erp_ref, tax_id in (
            ("de", "Nordwind Logistics GmbH", "C-10042", "DE123456789"),
            ("nl", "Nordwind Logistics B.V.", "C-20017", "NL123456789B01"),
        ):
            entity = LegalEntity(account_id=account.id, name=name, erp_ref=erp_ref, tax_id=tax_id)
            self.session.add(entity)
            self.legal_entities[key] = entity
        await self.session.flush()
        await audit.record(
            self.session, CLI, "account.create", "account", account.id, {"name": account.name}
        )

    # --- customers write ----------------------------------------------------------------------

    def _arrived(self, result: IngestResult | Arrival) -> Arrival:
        arrival = Arrival(
            result.interaction_id, result.conversation_id, result.contact_id, result.lead_id
        )
        self.contact_ids.add(arrival.contact_id)
        self.conversation_ids.add(arrival.conversation_id)
        if arrival.lead_id is not None:
            self.lead_ids.add(arrival.lead_id)
        return arrival

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
    ) -> Arrival:
        """A web-form submission, as the form page posts it, through the web-form channel."""
        self.at(when)
        posted: dict[str, object] = {
            "name": name,
            "email": email,
            "message": message,
            "submission_id": f"demo-{submission}",
            **(fields or {}),
            **(marketing or {}),
        }
        if phone:
            posted["phone"] = phone
        result = await self.channel(WebFormChannel).receive(
            self.session, self.forms[slug], posted, policy=self.services.policy
        )
        if result is None:
            raise RuntimeError(f"demo story error: submission {submission} looked like spam")
        return self._arrived(result)

    async def email(
        self,
        when: datetime,
        key: str,
        sender: tuple[str, str],
        text: str,
        *,
        subject: str,
        to: str = "support",
        html: str | None = None,
        answers: tuple[str, ...] = (),
        attachments: tuple[Attachment, ...] = (),
    ) -> Arrival:
        """A customer's email arriving in mailbox `to`, imported by the email channel;
        `answers` are the keys of the demo messages it replies to."""
        self.at(when)
        mailbox = self.mailboxes[to]
        raw = compose(
            key=key,
            sender=sender,
            to=str(mailbox.setting("address")),
            subject=subject,
            text=text,
            when=when,
            html=html,
            answers=[self._sent_ids[earlier] for earlier in answers],
            attachments=attachments,
        )
        self._sent_ids[key] = message_id(key, sender[1])
        uid = self._uids[to] = self._uids.get(to, 0) + 1
        outcome = await import_message(
            self.session,
            mailbox,
            reference_of(1, uid),
            raw,
            self.services.store,
            self.services.policy,
            received_at=when,
        )
        if outcome.status is not ImportStatus.INGESTED or outcome.interaction_id is None:
            raise RuntimeError(f"demo story error: email {key} was {outcome.status}")
        interaction = await self.session.get(Interaction, outcome.interaction_id)
        if interaction is None or interaction.conversation_id is None:
            raise RuntimeError(f"demo story error: email {key} is in no conversation")
        return self._arrived(
            Arrival(interaction.id, interaction.conversation_id, interaction.contact_id)
        )

    async def from_system(
        self,
        when: datetime,
        external_id: str,
        contact: ContactIn,
        text: str,
        *,
        subject: str,
        kind: str,
        queue: str,
        meta: dict[str, Any],
        lead_source: str | None = None,
    ) -> Arrival:
        """Another system posts an interaction through the API channel."""
        self.at(when)
        body = InteractionIn.model_validate(
            {
                "external_id": external_id,
                "contact": contact,
                "text": text,
                "subject": subject,
                "kind": kind,
                "queue": queue,
                "meta": meta,
                "lead": LeadIn(source=lead_source) if lead_source else None,
            }
        )
        result = await self.channel(ApiChannel).receive(
            self.session, body, policy=self.services.policy
        )
        return self._arrived(result)

    async def message(
        self,
        when: datetime,
        channel: str,
        key: str,
        addresses: list[Address],
        text: str,
        *,
        name: str = "",
        queue: str | None = None,
    ) -> Arrival:
        """An SMS or WhatsApp message: the seam (module docstring). No channel of this server
        parses them yet, so the message is ingested as the history it is."""
        self.at(when)
        result = await ingest(
            self.session,
            InboundEvent(
                channel=channel,
                external_id=f"demo-{key}",
                addresses=addresses,
                display_name=name,
                text=text,
                queue_id=self.queues[queue].id if queue else None,
            ),
            self.services.policy,
        )
        return self._arrived(result)

    # --- the team works -----------------------------------------------------------------------

    async def reply(self, when: datetime, who: str, conversation_id: int, text: str) -> None:
        """`who` answers the customer, delivered back then (the outbox will not send it
        again). On a channel this server cannot send on (SMS, WhatsApp before their channel
        runs: the seam), the answer given back then is kept as history."""
        self.at(when)
        conversation = await self.session.get(Conversation, conversation_id)
        if conversation is None:
            raise RuntimeError(f"demo story error: no conversation {conversation_id}")
        answering = catalog().get(catalog().reply_channel(conversation.channel))
        if answering is not None and answering.can_send:
            _, item = await conversations.reply(
                self.session, self.actor(who), conversation_id, text=text
            )
            item.status = OutboxStatus.SENT
            item.attempts = 1
            item.provider_id = "demo"
            item.sent_at = when
        else:
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
                )
            )
            conversation.last_outbound_at = when
            if conversation.first_response_at is None:
                conversation.first_response_at = when
        await self.session.flush()

    async def note(self, when: datetime, who: str, conversation_id: int, text: str) -> None:
        """An internal note by `who`; @mentions in it notify as they would in the console."""
        self.at(when)
        await conversations.add_note(self.session, self.actor(who), conversation_id, text=text)

    async def read(self, when: datetime, who: str, conversation_id: int) -> None:
        """`who` has read the conversation as far as it goes now."""
        self.at(when)
        await inbox.mark_read(self.session, self.actor(who), conversation_id)

    async def assign(self, conversation_id: int, who: str) -> None:
        await conversations.assign(self.session, CLI, conversation_id, self.operators[who].id)

    async def status(
        self,
        when: datetime,
        conversation_id: int,
        status: ConversationStatus,
        *,
        snoozed_until: datetime | None = None,
    ) -> None:
        self.at(when)
        await conversations.set_status(
            self.session, CLI, conversation_id, status, snoozed_until=snoozed_until
        )

    async def resolve(self, when: datetime, conversation_id: int) -> None:
        await self.status(when, conversation_id, ConversationStatus.RESOLVED)

    async def contact(self, contact_id: int, changes: ContactChanges) -> None:
        await update_contact(self.session, CLI, contact_id, changes)

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

    # --- the end of the day ------------------------------------------------------------------

    async def lead_rules(self) -> None:
        """New leads go to the sales team in turn, ten a day each (docs/routing.md)."""
        self.at(self.now)
        sellers = [self.operators[who].id for who in ("tom", "luis")]
        await set_rules(
            self.session,
            CLI,
            LEAD_RULES,
            {
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

    async def presence(self) -> None:
        """Who is at work right now, and since when."""
        for who, presence, reason, since in (
            ("anna", Presence.AVAILABLE, None, self.ago(hours=5, minutes=10)),
            ("tom", Presence.AVAILABLE, None, self.ago(hours=6)),
            ("luis", Presence.AWAY, "Lunch break", self.ago(minutes=20)),
            ("maria", Presence.OFFLINE, None, self.ago(hours=15)),
        ):
            self.at(since)
            operator = self.operators[who]
            await set_presence(self.session, operator, presence, reason)
            operator.presence_since = since
            if presence == Presence.AVAILABLE:
                # As if their console closed just now: with no console open, routing sets
                # them away after the grace and withdraws their offers, so no work waits on
                # an offer nobody sees; signing in makes them available again.
                operator.console_seen_at = self.now
        self.at(self.now)
        await self.session.flush()

    async def settle_timestamps(self) -> None:
        """Date each conversation and contact by its history (their rows were written at the
        first thing that happened to them, and touched by later ones), and set the waits and
        first-response targets of the last day."""
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
