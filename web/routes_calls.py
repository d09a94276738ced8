"""A conversation's phone call in the console: what it is doing, and hold, resume, hang up.

The call is read through its conversation (`core.calls.current_call`: the conversation's
visibility decides); only the operator on the call, or a supervisor, controls it. Without a
channel that carries calls (no Twilio voice number), the controls answer 409.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.calls import NO_TELEPHONY, CallControls, CallView
from core.errors import Conflict
from web.api import ApiRoutes, Call, NoBody
from web.keys import CALL_CONTROLS

routes = ApiRoutes(tag="calls")


class CallOut(BaseModel):
    call: CallView | None


def _controls(call: Call[NoBody, NoBody]) -> CallControls:
    controls = call.request.app[CALL_CONTROLS]
    if controls is None:
        raise Conflict(NO_TELEPHONY)
    return controls


@routes.get(
    "/api/v1/conversations/{id}/call",
    summary="The conversation's latest phone call (null: it has none)",
    response=CallOut,
)
async def current(call: Call[NoBody, NoBody]) -> CallOut:
    controls = call.request.app[CALL_CONTROLS]
    if controls is None:
        return CallOut(call=None)
    return CallOut(call=await controls.view(call.actor, call.path_int("id")))


@routes.post(
    "/api/v1/conversations/{id}/call/hold",
    summary="Put the caller on hold (they hear the number's hold message)",
    response=CallView,
    errors=(409,),
)
async def hold(call: Call[NoBody, NoBody]) -> CallView:
    return await _controls(call).hold(call.actor, call.path_int("id"))


@routes.post(
    "/api/v1/conversations/{id}/call/resume",
    summary="Take the caller off hold (your phone is connected again)",
    response=CallView,
    errors=(409,),
)
async def resume(call: Call[NoBody, NoBody]) -> CallView:
    return await _controls(call).resume(call.actor, call.path_int("id"))


@routes.post(
    "/api/v1/conversations/{id}/call/hangup",
    summary="End the call",
    response=CallView,
    errors=(409,),
)
async def hang_up(call: Call[NoBody, NoBody]) -> CallView:
    return await _controls(call).hang_up(call.actor, call.path_int("id"))
