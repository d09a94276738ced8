"""Queues and their routing configuration, and the rule sets kept in the database.

`load_setups` reads every queue with its configuration parsed (`routing/config.py`); a stored
configuration that no longer parses is kept with its problem, so the pass can explain why that
queue's work waits. `create_queue` and `update_queue`, the one way
queues are made and changed, check a configuration before it is stored.

The queue rules (`QUEUE_RULES`: work matched to queues, `routing/rules.py`) and the lead rules
(`LEAD_RULES`: leads given an owner, `routing/leads.py`) are stored as routing settings;
`set_rules` checks them first (the queues and operators they name must exist).

`enter_queue` starts a conversation waiting (again) in its queue; the pass, the SLA
escalation and transfers use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.channels import catalog
from core.errors import Conflict, InvalidInput, validation_fields
from core.event_types import QUEUE_CREATED, QUEUE_UPDATED, ROUTING_RULES
from core.events import Event, emit
from core.models import Conversation, Operator, Queue, RoutingSetting
from core.queues import get_queue
from routing.config import QueueConfig, QueueConfigError, parse_queue_config
from routing.leads import LeadRuleSet, operator_ids
from routing.rules import RuleSet, parse_rule_set

MAX_CONFIG_CHARS = 20_000
QUEUE_RULES = "queue_rules"
LEAD_RULES = "lead_rules"


# --- Queues and their configuration ---------------------------------------------------------


@dataclass(frozen=True)
class QueueSetup:
    id: int
    name: str
    config: QueueConfig | None
    # Why the stored config is not usable (it was written by hand or by an older version).
    problem: str | None = None


# The queues as `load_setups` reads them: the configuration as stored text.
_SETUP_ROWS = select(Queue.id, Queue.name, cast(Queue.config, Text))


async def load_setups(session: AsyncSession) -> dict[int, QueueSetup]:
    """Every queue with its configuration parsed; a configuration is parsed once per
    process for each text it is stored as (a pass reads them all)."""
    return {
        queue_id: QueueSetup(queue_id, name, *_parsed(text))
        for queue_id, name, text in await session.execute(_SETUP_ROWS)
    }


@lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[QueueConfig | None, str | None]:
    """A stored configuration parsed, or why it does not parse (`QueueSetup.problem`).
    Configurations are frozen, so one parse serves every pass."""
    try:
        return parse_queue_config(json.loads(text)), None
    except QueueConfigError as exc:
        return None, "; ".join(f"{name}: {reason}" for name, reason in exc.fields.items())


async def create_queue(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    description: str = "",
    config: dict[str, Any] | None = None,
) -> Queue:
    """The one way a queue is made: its name free, its routing configuration checked."""
    name = await _free_name(session, name)
    queue = Queue(
        name=name,
        description=_check_description(description),
        config=await _checked_config(session, config or {}, None),
    )
    session.add(queue)
    await session.flush()
    await audit.record(session, actor, "queue.create", "queue", queue.id, {"name": name})
    await emit(session, Event(QUEUE_CREATED, {"queue": queue.id}))
    return queue


async def update_queue(
    session: AsyncSession,
    actor: Actor,
    queue_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
) -> Queue:
    """Change what is given of a queue (its configuration checked first); audited when it
    changes anything."""
    queue = await get_queue(session, queue_id)
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = await _free_name(session, name, queue.id)
    if description is not None:
        wanted["description"] = _check_description(description)
    if config is not None:
        wanted["config"] = await _checked_config(session, config, queue.id)
    changes = {key: value for key, value in wanted.items() if getattr(queue, key) != value}
    if not changes:
        return queue
    for key, value in changes.items():
        setattr(queue, key, value)
    await session.flush()
    await audit.record(session, actor, "queue.update", "queue", queue.id, changes)
    await emit(session, Event(QUEUE_UPDATED, {"queue": queue.id}))
    return queue


async def _free_name(session: AsyncSession, name: str, queue_id: int | None = None) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("queue name must be 1 to 100 characters", field="name")
    taken_by = await session.scalar(select(Queue.id).where(Queue.name == name))
    if taken_by is not None and taken_by != queue_id:
        raise Conflict(f"a queue named {name!r} exists already", field="name")
    return name


def _check_description(description: str) -> str:
    if len(description) > 2000:
        raise InvalidInput("description must be at most 2000 characters", field="description")
    return description


async def _checked_config(
    session: AsyncSession, config: dict[str, Any], queue_id: int | None
) -> dict[str, Any]:
    """`config` if it is a routing configuration of sane size that parses (QueueConfigError,
    a 400 per field, if not), naming only queues that exist."""
    try:
        size = len(json.dumps(config))
    except (TypeError, ValueError):
        raise InvalidInput("config must be a JSON object", field="config") from None
    if size > MAX_CONFIG_CHARS:
        raise InvalidInput(
            f"config must be at most {MAX_CONFIG_CHARS} characters as JSON", field="config"
        )
    known = set(await session.scalars(select(Queue.id)))
    parse_queue_config(config, queue_id=queue_id, known_queue_ids=known)
    return config


def enter_queue(conversation: Conversation, now: datetime) -> None:
    """The conversation starts waiting (again) in its queue."""
    conversation.queue_entered_at = now
    conversation.routing_note = None


# --- Rule sets kept in the database ---------------------------------------------------------


async def _stored(session: AsyncSession, name: str) -> dict[str, Any] | None:
    setting = await session.get(RoutingSetting, name)
    return None if setting is None else setting.value


async def queue_rules(session: AsyncSession) -> RuleSet | None:
    """The stored queue rules, parsed once per process for each text they are stored as
    (every pass with new work reads them)."""
    text = await session.scalar(
        select(cast(RoutingSetting.value, Text)).where(RoutingSetting.name == QUEUE_RULES)
    )
    return None if text is None else _rule_set(text)


@lru_cache(maxsize=64)
def _rule_set(text: str) -> RuleSet:
    return parse_rule_set(text)


async def lead_rules(session: AsyncSession) -> LeadRuleSet | None:
    raw = await _stored(session, LEAD_RULES)
    return None if raw is None else LeadRuleSet.model_validate(raw)


async def get_rules(session: AsyncSession, name: str) -> dict[str, Any] | None:
    return await _stored(session, name)


async def set_rules(
    session: AsyncSession, actor: Actor, name: str, raw: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Replace (or with None remove) the queue rules or the lead rules, checked first."""
    if raw is not None:
        raw = await _checked_rules(session, name, raw)
    setting = await session.get(RoutingSetting, name)
    if raw is None:
        if setting is not None:
            await session.delete(setting)
    elif setting is None:
        session.add(RoutingSetting(name=name, value=raw))
    else:
        setting.value = raw
    await session.flush()
    await audit.record(session, actor, f"routing.{name}", "routing_setting", name)
    await emit(session, Event(ROUTING_RULES, {}, {"name": name}))
    return raw


async def _checked_rules(session: AsyncSession, name: str, raw: dict[str, Any]) -> dict[str, Any]:
    if name == QUEUE_RULES:
        # Rules may name the channels this application runs (the registry's), no others.
        rule_set = parse_rule_set(raw, channels=catalog().conversation_channels())
        wanted = {rule_set.default_queue_id, *(rule.queue_id for rule in rule_set.rules)}
        known = set(await session.scalars(select(Queue.id).where(Queue.id.in_(wanted))))
        missing = sorted(wanted - known)
        if missing:
            raise InvalidInput(f"no queues with ids {missing}", field="rule_set")
        return rule_set.model_dump(mode="json")
    try:
        lead_set = LeadRuleSet.model_validate(raw)
    except ValidationError as exc:
        error = InvalidInput("the lead rules are not valid")
        error.fields.update(validation_fields(exc, "lead_rules"))
        raise error from None
    wanted = set(operator_ids(lead_set))
    known = set(
        await session.scalars(
            select(Operator.id).where(Operator.id.in_(wanted), Operator.active.is_(True))
        )
    )
    missing = sorted(wanted - known)
    if missing:
        raise InvalidInput(f"no active operators with ids {missing}", field="lead_rules")
    return lead_set.model_dump(mode="json")
