"""What core knows of channels: their facts, never their code.

Each channel (a folder under `channels/`) describes itself with `ChannelFacts`: its name and
label, the kind of customer address it delivers to, the capacity kind its work counts against,
what it can send. The application installs the facts of the channels it runs (the registry in
`channels/registry.py` does, when the app or the CLI starts); core reads them here to validate
replies, count capacity and describe channels, so adding a channel edits no core module.

Like the clock, the catalogue is one per process: the installed channels are configuration of
the process, the same for every request. Unknown channel names (old data, a channel that was
removed) still read sensibly: no address kind, they cannot send, their work is "messaging".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from core.errors import InvalidInput
from core.models import IdentityKind

# Capacity kinds: operators have a capacity per kind of work, not per channel (see
# routing/capacity.py).
VOICE: Final = "voice"
MESSAGING: Final = "messaging"
EMAIL: Final = "email"
CAPACITY_KINDS: Final = (VOICE, MESSAGING, EMAIL)


class Capability(enum.StrEnum):
    """What a channel can carry outbound."""

    TEXT = "text"
    HTML = "html"
    MEDIA = "media"
    # Pre-approved message templates (WhatsApp outside its 24-hour window).
    TEMPLATES = "templates"


@dataclass(frozen=True)
class ChannelFacts:
    """A channel as the rest of omnicrm sees it.

    `identity_kind` is the kind of customer address the channel delivers to (replies need the
    contact to have one); `sends` is empty for a channel that cannot answer at all, and then
    `answered_by` may name the channel that answers for it (web forms are answered by email).
    `reply_window` is how long after the customer's last message free text may be sent
    (WhatsApp's 24 hours); None is unlimited. `carries_conversations` is False for an entry
    that only holds accounts for other channels (Twilio's accounts serve SMS and WhatsApp):
    routing rules and the console's channel filters never offer it. `subjects` is True for
    a channel whose messages carry a subject line (email): replies on it get "Re: ...";
    chat-like channels' replies get none.
    """

    name: str
    label: str
    icon: str
    identity_kind: IdentityKind | None
    capacity_kind: str = MESSAGING
    sends: frozenset[Capability] = frozenset()
    answered_by: str | None = None
    reply_window: timedelta | None = None
    description: str = ""
    carries_conversations: bool = True
    subjects: bool = False

    def __post_init__(self) -> None:
        if self.capacity_kind not in CAPACITY_KINDS:
            raise ValueError(f"capacity kind must be one of {', '.join(CAPACITY_KINDS)}")
        if self.sends and self.identity_kind is None:
            raise ValueError(f"channel {self.name} sends, so it needs the address kind it uses")

    @property
    def can_send(self) -> bool:
        return Capability.TEXT in self.sends or Capability.TEMPLATES in self.sends


@dataclass
class ChannelCatalog:
    """The channels a process runs, by name."""

    channels: dict[str, ChannelFacts] = field(default_factory=dict)

    def get(self, name: str) -> ChannelFacts | None:
        return self.channels.get(name)

    def names(self) -> list[str]:
        return sorted(self.channels)

    def conversation_channels(self) -> list[str]:
        """The channels conversations can be on (what routing rules may name), by name."""
        return [name for name in self.names() if self.channels[name].carries_conversations]

    def capacity_kind(self, channel: str) -> str:
        facts = self.channels.get(channel)
        return facts.capacity_kind if facts is not None else MESSAGING

    def senders(self) -> list[ChannelFacts]:
        """The channels that can carry an answer, by name."""
        return [self.channels[name] for name in self.names() if self.channels[name].can_send]

    def reply_channel(self, conversation_channel: str) -> str:
        """The channel an answer goes out on by default: the conversation's own, or the one
        that answers for it."""
        facts = self.channels.get(conversation_channel)
        if facts is not None and not facts.can_send and facts.answered_by:
            return facts.answered_by
        return conversation_channel

    def sending(self, channel: str, field_name: str = "channel") -> ChannelFacts:
        """The facts of a channel a reply may go out on; InvalidInput naming those that can."""
        facts = self.channels.get(channel)
        if facts is None or not facts.can_send:
            able = ", ".join(item.name for item in self.senders()) or "none"
            what = "is no channel" if facts is None else "cannot send"
            raise InvalidInput(
                f"{channel!r} {what}; channels that can send: {able}", field=field_name
            )
        return facts


_catalog = ChannelCatalog()


def catalog() -> ChannelCatalog:
    """The channels this process runs."""
    return _catalog


def install(facts: Iterable[ChannelFacts]) -> ChannelCatalog:
    """Make `facts` the channels of this process; returns the catalogue it replaces."""
    channels: dict[str, ChannelFacts] = {}
    for item in facts:
        if item.name in channels:
            raise ValueError(f"two channels are named {item.name!r}")
        channels[item.name] = item
    for item in channels.values():
        if item.answered_by is not None and item.answered_by not in channels:
            raise ValueError(f"channel {item.name} is answered by unknown {item.answered_by}")
    return _put(ChannelCatalog(channels))


def _put(chosen: ChannelCatalog) -> ChannelCatalog:
    global _catalog  # one set of channels per process, like the one clock
    previous, _catalog = _catalog, chosen
    return previous


@contextmanager
def installed(facts: Iterable[ChannelFacts]) -> Iterator[ChannelCatalog]:
    """Run a block with `facts` installed, then put the previous channels back."""
    previous = install(facts)
    try:
        yield _catalog
    finally:
        _put(previous)


def as_mapping() -> Mapping[str, ChannelFacts]:
    return dict(_catalog.channels)
