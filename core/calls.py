"""Phone calls as the console sees them: the one read of a conversation's call (through the
conversation's visibility), its view, and what a channel that carries calls offers the
console (`CallControls`: hold, resume, hang up; `core.tasks.CallPlacer`: call back)."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.conversations import get_conversation
from core.models import CallState, VoiceCall

# What a call route answers (409) when no channel carries calls.
NO_TELEPHONY: Final = "no telephony: add a Twilio account with a voice number"
# The call is live: someone talks, or is being rung.
LIVE_STATES: Final = (CallState.CONNECTED, CallState.ON_HOLD, CallState.DIALING, CallState.RINGING)


class CallView(BaseModel):
    """A call as the console shows it."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    id: int
    state: str
    direction: str
    from_: str = Field(alias="from")
    to: str
    operator_id: int | None
    started_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    wait_seconds: int | None
    talk_seconds: int | None
    ivr_choice: str | None
    can_control: bool

    @classmethod
    def of(cls, call: VoiceCall, actor: Actor) -> CallView:
        mine = call.operator_id is not None and call.operator_id == actor.operator_id
        live = call.state in LIVE_STATES
        return cls(
            id=call.id,
            state=call.state,
            direction=call.direction,
            from_=call.from_number,
            to=call.to_number,
            operator_id=call.operator_id,
            started_at=call.started_at,
            queued_at=call.queued_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            outcome=call.outcome,
            wait_seconds=call.wait_seconds,
            talk_seconds=call.talk_seconds,
            ivr_choice=call.ivr_choice,
            can_control=live and (mine or actor.is_supervisor),
        )


async def current_call(
    session: AsyncSession, actor: Actor, conversation_id: int
) -> VoiceCall | None:
    """The conversation's latest call, if the actor may see the conversation."""
    await get_conversation(session, actor, conversation_id)
    return await session.scalar(
        select(VoiceCall)
        .where(VoiceCall.conversation_id == conversation_id)
        .order_by(VoiceCall.id.desc())
        .limit(1)
    )


class CallControls(Protocol):
    """What the console may do with a live call (each checks visibility and who may)."""

    async def view(self, actor: Actor, conversation_id: int) -> CallView | None: ...

    async def hold(self, actor: Actor, conversation_id: int) -> CallView: ...

    async def resume(self, actor: Actor, conversation_id: int) -> CallView: ...

    async def hang_up(self, actor: Actor, conversation_id: int) -> CallView: ...
