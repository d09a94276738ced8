"""What may be sent to a customer now, whatever the channel: opt-outs and reply windows.

Both rules are checked before a reply is committed, so a message that the provider would
refuse (Twilio's 21610 for an unsubscribed number, 63016 outside WhatsApp's window) is a
400 with the reason instead of an outbox item that fails later.

- An address the person unsubscribed (`identity.opted_out_at`: an SMS "STOP", or the
  provider's refusal) gets no reply on any channel that delivers to it, until they
  subscribe again.
- A channel with a reply window (`ChannelFacts.reply_window`, WhatsApp's 24 hours) takes
  free text only within that time after the customer's last message on it; outside it only
  a pre-approved template may go out (channels with the TEMPLATES capability).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import Capability, ChannelFacts
from core.errors import InvalidInput
from core.models import Direction, Identity, Interaction, utcnow


@dataclass(frozen=True)
class Window:
    """A channel's reply window for one contact: when they last wrote, when it closes."""

    last_inbound_at: datetime | None
    closes_at: datetime | None
    open: bool


async def reply_window(
    session: AsyncSession, contact_id: int, facts: ChannelFacts, now: datetime | None = None
) -> Window | None:
    """The window of `facts`'s channel for the contact; None if the channel has none."""
    if facts.reply_window is None:
        return None
    now = now or utcnow()
    last: datetime | None = await session.scalar(
        select(func.max(Interaction.occurred_at)).where(
            Interaction.contact_id == contact_id,
            Interaction.channel == facts.name,
            Interaction.direction == Direction.IN,
        )
    )
    if last is None:
        return Window(None, None, False)
    closes_at = last + facts.reply_window
    return Window(last, closes_at, now < closes_at)


async def addresses_of(session: AsyncSession, contact_id: int) -> dict[str, str]:
    """The contact's first address of each kind (the one replies go to)."""
    rows = await session.execute(
        select(Identity.kind, Identity.address)
        .where(Identity.contact_id == contact_id)
        .order_by(Identity.id.desc())
    )
    return {str(kind): str(address) for kind, address in rows}


async def opt_out_of(session: AsyncSession, kind: str, address: str) -> Identity | None:
    """The identity if its owner unsubscribed it, else None."""
    found: Identity | None = await session.scalar(
        select(Identity).where(
            Identity.kind == kind,
            Identity.address == address,
            Identity.opted_out_at.is_not(None),
        )
    )
    return found


async def check_reply(
    session: AsyncSession,
    contact_id: int,
    facts: ChannelFacts,
    recipient: str,
    *,
    template: bool = False,
    media: bool = False,
) -> None:
    """Raise InvalidInput with the reason if this reply may not go out now."""
    if facts.identity_kind is not None:
        opted_out = await opt_out_of(session, facts.identity_kind, recipient)
        if opted_out is not None and opted_out.opted_out_at is not None:
            raise InvalidInput(
                f"{recipient} unsubscribed on {opted_out.opted_out_at:%Y-%m-%d %H:%M} UTC "
                f"({opted_out.opt_out_reason or 'opted out'}); nothing can be sent to it on "
                f"{facts.label} until they write again",
                field="channel",
            )
    if template and Capability.TEMPLATES not in facts.sends:
        raise InvalidInput(f"{facts.label} has no message templates", field="template")
    if media and Capability.MEDIA not in facts.sends:
        raise InvalidInput(f"{facts.label} cannot send media", field="media_urls")
    window = await reply_window(session, contact_id, facts)
    if window is None or window.open or template:
        return
    hours = facts.reply_window.total_seconds() / 3600 if facts.reply_window else 0
    when = (
        f"the customer last wrote at {window.last_inbound_at:%Y-%m-%d %H:%M} UTC"
        if window.last_inbound_at is not None
        else "the customer has not written on it"
    )
    raise InvalidInput(
        f"outside {facts.label}'s {hours:g}-hour reply window ({when}): only an approved "
        "template can be sent",
        field="template",
    )


async def set_opt_out(
    session: AsyncSession, kind: str, address: str, reason: str | None, at: datetime | None = None
) -> bool:
    """Mark an address unsubscribed (`reason`) or subscribed again (None); whether it changed."""
    if reason is None:
        values: dict[str, object] = {"opted_out_at": None, "opt_out_reason": None}
        changed_filter = Identity.opted_out_at.is_not(None)
    else:
        values = {"opted_out_at": at or utcnow(), "opt_out_reason": reason[:500]}
        changed_filter = Identity.opted_out_at.is_(None)
    result = await session.execute(
        update(Identity)
        .where(Identity.kind == kind, Identity.address == address, changed_filter)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
