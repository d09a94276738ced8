"""A queue's routing configuration (`Queue.config`), checked as a whole.

Example (every key is optional; docs/routing.md explains each)::

    {
      "strategies": ["sticky", "skills_match", "least_busy"],
      "sticky_max_wait_seconds": 60,
      "required_skills": "language == \\"de\\" and billing >= 2",
      "offer_timeout_seconds": 30,
      "max_wait_seconds": 600,
      "overflow_queue_id": 4,
      "business_hours": {"timezone": "Europe/Berlin", "weekly": {"mon": ["09:00-17:00"]}},
      "sla": {"first_response_minutes": 60, "resolution_minutes": 1440},
      "escalation": {"actions": ["raise_priority", "notify_supervisors"], "raise_priority_by": 1},
      "call_answer_target_seconds": 20
    }

Without ``offer_timeout_seconds`` the queue assigns directly, as email teams usually want; with
it, the chosen operator is offered the work and has that long to accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import InvalidInput, validation_fields
from core.monitor import CALL_ANSWER_TARGET_SECONDS, MAX_CALL_ANSWER_TARGET_SECONDS
from routing.calendar import BusinessHours
from routing.expressions import Expression
from routing.strategies import MAX_STICKY_WAIT_SECONDS, QueuePolicy, StrategyName

EscalationAction = Literal["raise_priority", "notify_supervisors", "reassign"]
MAX_OFFER_SECONDS = 3600
MAX_WAIT_SECONDS = 30 * 24 * 3600
MAX_SLA_MINUTES = 365 * 24 * 60
MAX_PRIORITY = 100


class SlaTargets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Counted in the queue's business hours when it has them, else around the clock.
    first_response_minutes: Annotated[int, Field(gt=0, le=MAX_SLA_MINUTES)] | None = None
    resolution_minutes: Annotated[int, Field(gt=0, le=MAX_SLA_MINUTES)] | None = None


class Escalation(BaseModel):
    """What a breached SLA sets off; the breach is always logged and announced to supervisors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: tuple[EscalationAction, ...] = ("notify_supervisors",)
    raise_priority_by: int = Field(default=1, ge=1, le=MAX_PRIORITY)


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: tuple[StrategyName, ...] = ("round_robin",)
    sticky_max_wait_seconds: int = Field(default=0, ge=0, le=MAX_STICKY_WAIT_SECONDS)
    required_skills: Expression | None = None
    offer_timeout_seconds: int | None = Field(default=None, ge=0, le=MAX_OFFER_SECONDS)
    max_wait_seconds: int | None = Field(default=None, gt=0, le=MAX_WAIT_SECONDS)
    overflow_queue_id: int | None = Field(default=None, gt=0)
    business_hours: BusinessHours | None = None
    sla: SlaTargets = SlaTargets()
    escalation: Escalation = Escalation()
    # Phone calls answered within this many seconds of queueing count toward the monitor's
    # call service level (core/monitor.py).
    call_answer_target_seconds: int = Field(
        default=CALL_ANSWER_TARGET_SECONDS, ge=1, le=MAX_CALL_ANSWER_TARGET_SECONDS
    )
    # Customers who name an order of theirs get its status at once, as an automatic reply
    # (erp_bridge/auto_answers.py, which reads this key from the stored JSON: strict, so
    # what passes here is the JSON `true` it looks for, never "true" or 1).
    auto_order_status: bool = Field(default=False, strict=True)

    @field_validator("strategies")
    @classmethod
    def _valid_chain(cls, strategies: tuple[StrategyName, ...]) -> tuple[StrategyName, ...]:
        # The chain's own rules (not empty, each once, sticky first) live in QueuePolicy.
        try:
            QueuePolicy(strategies=strategies)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return strategies

    @cached_property
    def policy(self) -> QueuePolicy:
        return QueuePolicy(
            strategies=self.strategies,
            sticky_max_wait_seconds=self.sticky_max_wait_seconds,
            business_hours=self.business_hours,
        )

    @property
    def offer_timeout(self) -> timedelta | None:
        """How long an offer stands; None (or 0 in the config) assigns without an offer."""
        return timedelta(seconds=self.offer_timeout_seconds) if self.offer_timeout_seconds else None

    @property
    def max_wait(self) -> timedelta | None:
        return timedelta(seconds=self.max_wait_seconds) if self.max_wait_seconds else None


class QueueConfigError(InvalidInput):
    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("the queue's routing configuration is not valid")
        self.fields = dict(fields)


def parse_queue_config(
    raw: Mapping[str, object],
    *,
    queue_id: int | None = None,
    known_queue_ids: set[int] | None = None,
) -> QueueConfig:
    """The queue's config checked; `QueueConfigError` (a 400 with one message per field)."""
    try:
        config = QueueConfig.model_validate(raw)
    except ValidationError as exc:
        fields = validation_fields(exc, "config")
        raise QueueConfigError(
            {
                (name if name == "config" else f"config.{name}"): text
                for name, text in fields.items()
            }
        ) from None
    overflow = config.overflow_queue_id
    if overflow is not None:
        if overflow == queue_id:
            raise QueueConfigError(
                {"config.overflow_queue_id": "a queue cannot overflow into itself"}
            )
        if known_queue_ids is not None and overflow not in known_queue_ids:
            raise QueueConfigError({"config.overflow_queue_id": f"no queue {overflow}"})
    if overflow is not None and config.max_wait is None:
        raise QueueConfigError(
            {"config.max_wait_seconds": "an overflow queue needs max_wait_seconds"}
        )
    return config
