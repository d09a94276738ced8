"""The demo's weeks of history, one customer at a time."""

from __future__ import annotations

from datetime import timedelta

from channels.api import ContactIn
from core.contacts import ContactChanges
from core.identity import Address
from core.models import ConversationStatus, IdentityKind, LeadStage
from web.demo.story import Story

PHONE = IdentityKind.PHONE
WHATSAPP = IdentityKind.WHATSAPP


async def history(story: Story) -> None:
    for chapter in (liam, emma, jonas, sofia, noah, ethan, olivia, mia):
        await chapter(story)


async def liam(story: Story) -> None:
    liam = ("Liam O'Connor", "liam.oconnor@example.net")
    first = await story.email(
        story.ago(days=41),
        "liam-1",
        liam,
        "Hi, I requested a password reset for my customer account twice, but the link in "
        "the email says it has expired. Can you help?\n\nLiam",
        subject="Password reset link does not work",
    )
    await story.assign(first.conversation_id, "anna")
    await story.reply(
        story.ago(days=41, hours=-2),
        "anna",
        first.conversation_id,
        "Hi Liam, reset links expire after 30 minutes, and a second request cancels the "
        "first. I have just sent you a fresh link: please use the newest email.\n\nBest, Anna",
    )
    await story.email(
        story.ago(days=40),
        "liam-2",
        liam,
        "That worked, thank you!",
        subject="Re: Password reset link does not work",
        answers=("liam-1",),
    )
    await story.resolve(story.ago(days=40, hours=-1), first.conversation_id)
    # Long after the window for reopening: a new conversation starts.
    await story.email(
        story.ago(hours=3),
        "liam-3",
        liam,
        "Hello, I am moving next week. Could you change the delivery address of my open "
        "order 10077 to 14 Harbour Street, Dublin?\n\nThanks, Liam",
        subject="Change of delivery address",
    )


async def emma(story: Story) -> None:
    form = await story.form(
        story.ago(days=3),
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
    await story.assign(form.conversation_id, "anna")
    await story.note(
        story.ago(days=3, hours=-1),
        "anna",
        form.conversation_id,
        "Order 10042 is within the 30-day window. Asked the warehouse for a replacement unit.",
    )
    await story.reply(
        story.ago(days=3, hours=-1.5),
        "anna",
        form.conversation_id,
        "Hi Emma, I am sorry the blender failed so soon. We will send you a replacement "
        "this week. Could you tell us the serial number on the bottom of the base?\n\n"
        "Best regards, Anna",
    )
    email = await story.email(
        story.ago(days=2),
        "emma-2",
        ("Emma Schultz", "emma.schultz@example.org"),
        "Hi Anna, the serial number is BX-2291-0457. Thanks for the quick help!\n\nEmma",
        subject="Re: Contact us",
    )
    await story.assign(email.conversation_id, "anna")
    await story.reply(
        story.ago(days=2, hours=-1),
        "anna",
        email.conversation_id,
        "Thank you, Emma! The replacement ships today with DHL, tracking number "
        "00340434161234567890. Please let us know when it has arrived.\n\nAnna",
    )
    await story.read(story.ago(days=2, hours=-1), "anna", email.conversation_id)
    await story.status(
        story.ago(days=2, hours=-1), email.conversation_id, ConversationStatus.PENDING
    )


async def jonas(story: Story) -> None:
    email, phone = "jonas.weber@nordwind-logistics.example", "+49 40 32901177"
    erp = await story.from_system(
        story.ago(days=20),
        "erp-SO-4711",
        ContactIn(email=email, phone=phone, name="Jonas Weber"),
        "Sales order SO-4711 confirmed: 12 pallets of stretch film, delivery in about three weeks.",
        subject="ERP: order SO-4711 confirmed",
        kind="event",
        queue="Sales",
        meta={"source": "erp", "order": "SO-4711"},
    )
    # A notification that needs no answer; the field visit later starts a new thread.
    await story.resolve(story.ago(days=20), erp.conversation_id)
    await story.contact(
        erp.contact_id,
        ContactChanges(
            priority_tier="vip",
            account_id=story.legal_entities["de"].account_id,
            language="de",
            tags=["key-account"],
            custom_fields={"job_title": "Head of Purchasing", "erp_ref": "C-10042"},
        ),
    )
    visit = await story.from_system(
        story.ago(days=7),
        "field-visit-881",
        ContactIn(email=email),
        "Field visit: Nordwind plans a second warehouse in Rotterdam and wants two pallet "
        "wrapping machines with a service contract for it.",
        subject="Field sales: visit report",
        kind="call",
        queue="Sales",
        meta={"source": "field-sales-app", "visited_by": "luis@example.com"},
        lead_source="field-sales",
    )
    await story.lead(visit.lead_id, LeadStage.QUALIFIED, "52000", "EUR", "luis")
    await story.assign(visit.conversation_id, "luis")
    question = await story.email(
        story.ago(days=2),
        "jonas-1",
        ("Jonas Weber", email),
        "Hello, can you confirm the delivery date of our PO 4711 (your order SO-4711)? "
        "Our warehouse needs the goods before Friday.\n\nBest regards\nJonas Weber\n"
        "Head of Purchasing, Nordwind Logistics GmbH",
        subject="Delivery date for PO 4711",
    )
    await story.assign(question.conversation_id, "anna")
    await story.reply(
        story.ago(days=2, hours=-2),
        "anna",
        question.conversation_id,
        "Hello Mr Weber, SO-4711 left our warehouse yesterday and is due on Thursday. "
        "I will send you the tracking link as soon as the carrier confirms it.\n\n"
        "Kind regards, Anna Novak",
    )
    await story.read(story.ago(days=2, hours=-2), "anna", question.conversation_id)
    chat = await story.message(
        story.ago(minutes=40),
        "whatsapp",
        "jonas-wa-1",
        [Address(WHATSAPP, phone), Address(PHONE, phone)],
        "Any news on the tracking link? Our truck slot is booked for Thursday 9:00.",
        queue="Support",
    )
    await story.assign(chat.conversation_id, "anna")
    await story.note(
        story.ago(minutes=30),
        "tom",
        chat.conversation_id,
        "@anna VIP: Nordwind is our largest logistics account. Please answer within the hour.",
    )


async def sofia(story: Story) -> None:
    sofia = ("Sofia de Vries", "sofia.devries@nordwind-logistics.example")
    first = await story.email(
        story.ago(days=6),
        "sofia-1",
        sofia,
        "Dear team, invoice INV-2291 shows the VAT number of our German company. Please "
        "reissue it to Nordwind Logistics B.V., VAT NL859012345B01.\n\n"
        "Kind regards, Sofia de Vries, Finance",
        subject="Invoice INV-2291: wrong VAT number",
    )
    await story.contact(
        first.contact_id,
        ContactChanges(
            account_id=story.legal_entities["nl"].account_id,
            language="nl",
            custom_fields={"erp_ref": "C-20017"},
        ),
    )
    await story.assign(first.conversation_id, "luis")
    await story.reply(
        story.ago(days=6, hours=-3),
        "luis",
        first.conversation_id,
        "Dear Ms de Vries, you are right, sorry for the mix-up. Our accounting team has "
        "reissued the invoice as INV-2291-C to Nordwind Logistics B.V.; it reaches you "
        "by email today.\n\nBest regards, Luis García",
    )
    await story.email(
        story.ago(days=5),
        "sofia-2",
        sofia,
        "Received, thank you.",
        subject="Re: Invoice INV-2291: wrong VAT number",
        answers=("sofia-1",),
    )
    await story.resolve(story.ago(days=5, hours=-1), first.conversation_id)


async def noah(story: Story) -> None:
    noah = [Address(PHONE, "+1 212 555 0187")]
    first = await story.message(
        story.ago(days=1),
        "sms",
        "noah-1",
        noah,
        "Hi, is your store on 5th Avenue open this Sunday?",
        queue="Support",
    )
    # A text message carries no name; the operator asked for it.
    await story.contact(first.contact_id, ContactChanges(display_name="Noah Kim"))
    await story.reply(
        story.ago(days=1, hours=-0.5),
        "luis",
        first.conversation_id,
        "Hi Noah, yes: on Sundays we are open from 10am to 6pm. See you there!",
    )
    again = await story.message(
        story.ago(hours=2),
        "sms",
        "noah-2",
        noah,
        "Great, thanks! One more thing: do you also repair espresso machines? Mine is leaking.",
    )
    # Answered yesterday; waiting again since this message.
    story.waiting_since[again.conversation_id] = story.ago(hours=2)


async def ethan(story: Story) -> None:
    form = await story.form(
        story.ago(days=9),
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
    await story.assign(form.conversation_id, "luis")
    await story.note(
        story.ago(days=9, hours=-2),
        "luis",
        form.conversation_id,
        "Called Ethan: he needs on-site service within 48 hours; two sites have older "
        "machines that may need replacing in year two.",
    )
    await story.reply(
        story.ago(days=8),
        "luis",
        form.conversation_id,
        "Hi Ethan, thanks for the call. As promised, our proposal for the three-year "
        "contract: £9,600 per year, parts and 48-hour on-site service included. The full "
        "document follows by email.\n\nBest, Luis",
    )
    await story.lead(form.lead_id, LeadStage.PROPOSAL, "28800", "GBP", "luis")
    chat = await story.message(
        story.ago(days=4),
        "whatsapp",
        "ethan-wa-1",
        [Address(WHATSAPP, "+44 20 7946 0321"), Address(PHONE, "+44 20 7946 0321")],
        "Hi Luis, we are reviewing the proposal with our finance team and will get back "
        "to you next week.",
        queue="Sales",
    )
    await story.assign(chat.conversation_id, "luis")
    await story.status(
        story.ago(days=4),
        chat.conversation_id,
        ConversationStatus.SNOOZED,
        snoozed_until=story.now + timedelta(days=3),
    )


async def olivia(story: Story) -> None:
    form = await story.form(
        story.ago(days=25),
        "quote",
        "olivia-1",
        name="Olivia Martin",
        email="olivia.martin@example.org",
        message="We need 200 notebooks with our logo for a conference in June. Can you do "
        "it for under $2,500?",
        fields={"company": "Brightside Events"},
        marketing={"utm_source": "google", "utm_medium": "organic"},
    )
    await story.assign(form.conversation_id, "luis")
    await story.reply(
        story.ago(days=24),
        "luis",
        form.conversation_id,
        "Hi Olivia, yes: 200 A5 notebooks with your logo come to $2,350 including "
        "delivery. Shall I book the order?\n\nLuis",
    )
    answer = await story.email(
        story.ago(days=23),
        "olivia-2",
        ("Olivia Martin", "olivia.martin@example.org"),
        "Yes please, go ahead! Our purchase order follows today.\n\nOlivia",
        subject="Re: Request a quote",
        to="sales",
    )
    await story.assign(answer.conversation_id, "luis")
    await story.reply(
        story.ago(days=23, hours=-1),
        "luis",
        answer.conversation_id,
        "Booked! The notebooks will be with you by 2 June.\n\nLuis",
    )
    await story.lead(form.lead_id, LeadStage.WON, "2350", "USD", "luis")
    await story.resolve(story.ago(days=22), form.conversation_id)
    await story.resolve(story.ago(days=22), answer.conversation_id)


async def mia(story: Story) -> None:
    await story.form(
        story.ago(hours=2),
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
