"""Partial updates: telling a field that was not sent from one set to null."""

from __future__ import annotations

import enum
from typing import Final


class Unset(enum.Enum):
    """A field a PATCH did not send; distinct from None, which clears a nullable field."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET
