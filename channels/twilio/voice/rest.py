"""omnicrm's REST calls to Twilio's Voice API, through the official library: which account
and number a call is on (`Line`), and placing, redirecting, ending and looking up calls.
Twilio's refusals and network failures become `CallFailed` with what Twilio said."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.base.exceptions import TwilioException, TwilioRestException

from channels.base import ChannelServices
from channels.twilio.accounts import PROVIDER, account_by_id
from channels.twilio.client import connect
from channels.twilio.parse import describe_error
from channels.twilio.settings import TwilioSettings
from channels.twilio.voice.settings import VoiceNumber
from channels.twilio.voice.twiml import Hooks
from core.channel_accounts import AccountView
from core.models import (
    Direction,
    Operator,
    VoiceCall,
)
from core.preferences import preferences_of

log = logging.getLogger(__name__)


class CallFailed(Exception):
    """Twilio refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class Line:
    """An account and one of its numbers, and where Twilio reaches our webhooks."""

    account: AccountView
    settings: TwilioSettings
    number: VoiceNumber
    hooks: Hooks


def hooks_for(account: AccountView, services: ChannelServices) -> Hooks:
    base = account.setting("public_url") or services.settings.public_url
    if not base:
        raise CallFailed(
            "omnicrm has no public_url: Twilio could not reach it (set the server's or the"
            " account's public_url)"
        )
    return Hooks(f"{str(base).rstrip('/')}/hooks/{PROVIDER}/{account.name}")


async def line_of(session: AsyncSession, services: ChannelServices, call: VoiceCall) -> Line:
    found = await account_by_id(session, services.cipher, call.account_id or 0)
    if found is None:
        raise CallFailed("the call's Twilio account is gone or cannot be read")
    view, settings = found
    ours = call.to_number if call.direction == Direction.IN else call.from_number
    number = settings.voice_number(ours) or VoiceNumber(number=ours)
    return Line(view, settings, number, hooks_for(view, services))


async def _rest(line: Line, what: str, action: Any) -> Any:
    settings = line.settings
    try:
        async with connect(settings.account_sid, settings.auth_token, settings.api_base_url) as api:
            return await action(api.client)
    except TwilioRestException as exc:
        code = str(exc.code) if exc.code is not None else None
        text = describe_error(code, (exc.msg or "").split(": ", 1)[-1]) or f"HTTP {exc.status}"
        raise CallFailed(f"Twilio refused to {what}: {code or exc.status} {text}") from None
    except (TwilioException, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CallFailed(f"Twilio unreachable ({what}): {type(exc).__name__}: {exc}") from None


async def redirect(line: Line, call_sid: str, url: str) -> None:
    """Send a live leg to new TwiML (it leaves its queue or bridge)."""
    await _rest(
        line,
        "redirect the call",
        lambda client: client.calls(call_sid).update_async(url=url, method="POST"),
    )


async def hang_up_leg(line: Line, call_sid: str) -> None:
    await _rest(
        line,
        "hang up",
        lambda client: client.calls(call_sid).update_async(status="completed"),
    )


async def ring(line: Line, to: str, url: str, status_url: str, seconds: int) -> str:
    """Place a call to an operator's device; its CallSid."""
    created = await _rest(
        line,
        "place the call",
        lambda client: client.calls.create_async(
            to=to,
            from_=line.number.number,
            url=url,
            method="POST",
            status_callback=status_url,
            status_callback_method="POST",
            timeout=seconds,
        ),
    )
    return str(created.sid)


async def call_status(line: Line, call_sid: str) -> tuple[str, int | None]:
    """A call's status and duration as Twilio has them."""
    found = await _rest(
        line, "look the call up", lambda client: client.calls(call_sid).fetch_async()
    )
    duration = str(found.duration or "")
    return str(found.status or ""), int(duration) if duration.isdigit() else None


def device_of(operator: Operator) -> str | None:
    return preferences_of(operator).voice_device or None
