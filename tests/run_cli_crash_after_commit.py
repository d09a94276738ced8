"""`python -m tests.run_cli_crash_after_commit ARGS`: the omnicrm command at the suite's clock,
except that one of Twilio's webhooks kills its own process right after the commit, before
the answer: what an out-of-memory kill or a deploy at the worst moment does. Twilio then
gets no answer. Which webhook: `OMNICRM_TEST_CRASH_HOOK` (`message`, the default, or a voice
hook such as `voice-menu`).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from typing import Any

from channels.base import WebhookReply
from channels.twilio.voice.hooks import VOICE_HOOKS
from channels.twilio.webhooks import MessageHook
from core import clock, passwords
from web.cli import main


def _die_before_answering(self: Any, outcome: Any, how: str) -> WebhookReply:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")  # pragma: no cover


if __name__ == "__main__":
    passwords.install(passwords.CHEAP)
    if days := os.environ.get("OMNICRM_TEST_CLOCK_SHIFT_DAYS"):
        clock.install(clock.ShiftedClock(timedelta(days=float(days))))
    hook = os.environ.get("OMNICRM_TEST_CRASH_HOOK", "message")
    adapters = {adapter.hook: type(adapter) for adapter in VOICE_HOOKS}
    crashing = adapters.get(hook, MessageHook)
    crashing.do_acknowledge = _die_before_answering  # type: ignore[method-assign]
    sys.exit(main())
