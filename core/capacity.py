"""Channel kinds: operators have a capacity per kind of work, not per channel.

A phone call holds an operator completely, chats and messengers are handled several at a time,
email many more; so capacity is counted per kind, e.g. {"voice": 1, "messaging": 5, "email": 20}.
"""

from __future__ import annotations

from typing import Final

VOICE: Final = "voice"
MESSAGING: Final = "messaging"
EMAIL: Final = "email"
CHANNEL_KINDS: Final = (VOICE, MESSAGING, EMAIL)

_KIND_OF_CHANNEL: Final = {"email": EMAIL, "voice": VOICE}


def channel_kind(channel: str) -> str:
    """The capacity kind of a channel: email, voice, or messaging (SMS, chats, forms, API)."""
    return _KIND_OF_CHANNEL.get(channel, MESSAGING)
