"""Capacity kinds: operators have a capacity per kind of work, not per channel.

A phone call holds an operator completely, chats and messengers are handled several at a time,
email many more; so capacity is counted per kind, e.g. {"voice": 1, "messaging": 5, "email": 20}.
Each channel names its kind in its facts (core/channels.py); a channel this process does not
run counts as messaging.
"""

from __future__ import annotations

from typing import Final

from core.channels import CAPACITY_KINDS, EMAIL, MESSAGING, VOICE, catalog

CHANNEL_KINDS: Final = CAPACITY_KINDS

__all__ = ["CHANNEL_KINDS", "EMAIL", "MESSAGING", "VOICE", "channel_kind"]


def channel_kind(channel: str) -> str:
    """The capacity kind of a channel's work, from the installed channels' facts."""
    return catalog().capacity_kind(channel)
