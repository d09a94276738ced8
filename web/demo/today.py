"""The demo's last hours: a busy day in Support and some sales work."""

from __future__ import annotations

from datetime import timedelta

from core.identity import Address
from core.models import ConversationStatus, IdentityKind
from web.demo.mail import Attachment, png
from web.demo.story import Story

PHONE = IdentityKind.PHONE
WHATSAPP = IdentityKind.WHATSAPP
ANNA, LUIS, TOM = "anna", "luis", "tom"


async def today(story: Story) -> None:
    for part in (morning, midday, calls, now):
        await part(story)


async def morning(story: Story) -> None:
    hannah = await story.email(
        story.ago(hours=5),
        "hannah-1",
        ("Hannah Fischer", "hannah.fischer@example.net"),
        "Hello, my parcel (order 10311) arrived today with a crushed corner and the "
        "teapot inside is broken. Photos attached.\n\nHannah Fischer",
        html="<p>Hello,</p><p>my parcel (order <b>10311</b>) arrived today with a crushed "
        "corner and the teapot inside is broken. Photos attached.</p>"
        '<p style="color:#555">Hannah Fischer</p>'
        '<img src="https://tracker.example/open.gif" width="1" height="1">',
        subject="Broken teapot in my parcel",
        attachments=(
            Attachment("parcel.png", "image/png", png(64, 48, (181, 140, 92))),
            Attachment("teapot.png", "image/png", png(48, 64, (32, 96, 160))),
        ),
    )
    await story.assign(hannah.conversation_id, ANNA)
    await story.reply(
        story.ago(hours=4, minutes=35),
        ANNA,
        hannah.conversation_id,
        "Hi Hannah, I am sorry about the teapot! A new one is on its way today; there is "
        "no need to send the broken one back.\n\nAnna",
    )
    await story.note(
        story.ago(hours=4, minutes=30),
        ANNA,
        hannah.conversation_id,
        "@tom second parcel this week damaged by the same courier. Shall we raise it with them?",
    )
    await story.resolve(story.ago(hours=4), hannah.conversation_id)

    oliver = await story.message(
        story.ago(hours=4, minutes=30),
        "sms",
        "oliver-1",
        [Address(PHONE, "+1 646 555 0142")],
        "Do you deliver on Saturdays? I need a desk chair by this weekend.",
        name="Oliver Brown",
        queue="Support",
    )
    await story.assign(oliver.conversation_id, LUIS)
    # Well past the hour: a first response outside the target.
    await story.reply(
        story.ago(hours=2, minutes=55),
        LUIS,
        oliver.conversation_id,
        "Hi Oliver, yes: order by Thursday 6pm and choose Saturday delivery at checkout.",
    )
    await story.resolve(story.ago(hours=2, minutes=30), oliver.conversation_id)

    chloe_address = [Address(WHATSAPP, "+33 6 12 34 56 78"), Address(PHONE, "+33612345678")]
    chloe = await story.message(
        story.ago(hours=4),
        "whatsapp",
        "chloe-1",
        chloe_address,
        "Bonjour! Can I still change the colour of order 10322 to blue?",
        name="Chloé Dubois",
        queue="Support",
    )
    await story.assign(chloe.conversation_id, ANNA)
    await story.reply(
        story.ago(hours=3, minutes=50),
        ANNA,
        chloe.conversation_id,
        "Bonjour Chloé, yes, I have changed it to blue. It ships tomorrow.",
    )
    await story.read(story.ago(hours=3, minutes=50), ANNA, chloe.conversation_id)
    await story.message(
        story.ago(minutes=20),
        "whatsapp",
        "chloe-2",
        chloe_address,
        "Merci! And could you add a second cushion in the same colour?",
    )

    lucas = await story.form(
        story.ago(hours=3, minutes=30),
        "contact",
        "lucas-1",
        name="Lucas Silva",
        email="lucas.silva@example.com",
        message="Hi, the assembly instructions for the bookshelf BK-200 are missing a "
        "page (steps 7-9). Can you send them?",
        fields={"order_number": "10290"},
    )
    await story.assign(lucas.conversation_id, ANNA)
    await story.reply(
        story.ago(hours=2, minutes=50),
        ANNA,
        lucas.conversation_id,
        "Hi Lucas, here are steps 7 to 9 as a PDF. Does that get you going?\n\nAnna",
    )
    await story.read(story.ago(hours=2, minutes=50), ANNA, lucas.conversation_id)
    await story.status(
        story.ago(hours=2, minutes=50), lucas.conversation_id, ConversationStatus.PENDING
    )


async def midday(story: Story) -> None:
    grace = ("Grace Kim", "grace.kim@example.org")
    question = await story.email(
        story.ago(hours=2, minutes=30),
        "grace-1",
        grace,
        "Where can I download the invoice for order 10301?",
        subject="Invoice for order 10301",
    )
    await story.email(
        story.ago(hours=1, minutes=15),
        "grace-2",
        grace,
        "Never mind, I found it in my account. Thanks!",
        subject="Re: Invoice for order 10301",
        answers=("grace-1",),
    )
    # The customer helped herself before anyone answered: abandoned.
    await story.resolve(story.ago(hours=1), question.conversation_id)

    isla = await story.email(
        story.ago(hours=1, minutes=50),
        "isla-1",
        ("Isla Walker", "isla.walker@example.co.uk"),
        "Hello, I was charged twice for order 10317. Could you refund one of the "
        "payments?\n\nIsla Walker",
        subject="Charged twice for order 10317",
    )
    await story.assign(isla.conversation_id, ANNA)
    await story.reply(
        story.ago(minutes=45),
        ANNA,
        isla.conversation_id,
        "Hello Isla, you are right, sorry! The second payment is refunded; it shows on "
        "your statement within 3 to 5 days.\n\nAnna",
    )
    await story.read(story.ago(minutes=45), ANNA, isla.conversation_id)

    emma = await story.email(
        story.ago(hours=1, minutes=30),
        "emma-3",
        ("Emma Schultz", "emma.schultz@example.com"),
        "Hi, has the replacement blender shipped yet? I wrote from my other address "
        "before.\n\nEmma Schultz",
        subject="Replacement blender",
    )
    # A second address of the Emma of three days ago: a new contact, for now.
    story.waiting_since[emma.conversation_id] = story.ago(hours=1, minutes=30)

    leo = await story.message(
        story.ago(hours=1, minutes=20),
        "sms",
        "leo-1",
        [Address(PHONE, "+1 312 555 0199")],
        "Hi, is the oak dining table back in stock?",
        name="Leo Rossi",
        queue="Support",
    )
    await story.assign(leo.conversation_id, LUIS)
    await story.reply(
        story.ago(hours=1, minutes=5),
        LUIS,
        leo.conversation_id,
        "Hi Leo, it is back next Tuesday. Shall I reserve one for you?",
    )
    # Waiting on Leo's answer: Luis's work in the Support queue, which Anna sees under "My
    # queues".
    await story.status(story.ago(minutes=50), leo.conversation_id, ConversationStatus.PENDING)


async def calls(story: Story) -> None:
    """The phone line: Oliver calls about his Saturday delivery and Anna answers; Ben hangs
    up after waiting (a callback task for the sales queue)."""
    if not story.phone_account:
        return
    await story.call(
        story.ago(hours=2, minutes=40),
        "+1 646 555 0142",
        choice="orders",
        queue="Support",
        waited=timedelta(seconds=35),
        answered_by=ANNA,
        talked=timedelta(minutes=3, seconds=12),
    )
    await story.call(
        story.ago(minutes=40),
        "+1 206 555 0117",
        choice="sales",
        queue="Sales",
        waited=timedelta(minutes=2, seconds=5),
    )


async def now(story: Story) -> None:
    ben = await story.form(
        story.ago(hours=1),
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
    await story.assign(ben.conversation_id, LUIS)
    await story.reply(
        story.ago(minutes=30),
        LUIS,
        ben.conversation_id,
        "Hi Ben, 12 standing desks come to $6,840 including delivery to Seattle. I have "
        "sent the quote by email.\n\nLuis",
    )

    sophie = await story.email(
        story.ago(minutes=50),
        "sophie-1",
        ("Sophie Martin", "sophie.martin@example.fr"),
        "Bonjour, we are furnishing 3 meeting rooms in Lyon. Do you offer volume "
        "discounts?\n\nSophie Martin",
        subject="Volume discount for meeting rooms",
        to="sales",
    )
    await story.assign(sophie.conversation_id, TOM)

    await story.message(
        story.ago(minutes=25),
        "whatsapp",
        "ava-1",
        [Address(WHATSAPP, "+44 7700 900123")],
        "Hi, my sofa delivery was meant to come today between 8 and 12 but nobody came.",
        name="Ava Thompson",
        queue="Support",
    )
    await story.message(
        story.ago(minutes=15),
        "sms",
        "max-1",
        [Address(PHONE, "+49 151 23456789")],
        "Hallo, can I pick up my order 10330 at the Hamburg store instead?",
        name="Max Müller",
        queue="Support",
    )
