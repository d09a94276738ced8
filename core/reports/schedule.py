"""Weekly report emails: a supervisor subscribes to a report with its filters, a mailbox to
send from, a weekday and an hour in their time zone; each week the report of the seven days
before goes out through the outbox to their address.

Invariants:

- A run is one transaction: the email's outbox item and the subscription's next run time are
  written together, so a crash sends it either once or not yet, never twice; the outbox sends
  what it has acknowledged (core/outbox.py). On PostgreSQL due subscriptions are claimed with
  SKIP LOCKED, so two processes never send the same one.
- The period is the seven local days before the day of the run (a Monday 08:00 run sends
  Monday to Sunday of the week before).
- Only supervisors and admins receive reports: a subscription whose operator is no longer
  one (or is deactivated) is removed at its next run, and a mailbox that is gone or disabled
  skips the week (logged) instead of failing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.db import SessionFactory, transaction
from core.errors import Forbidden, InvalidInput, NotFound
from core.i18n import Translator, translator
from core.models import ChannelAccount, Operator, ReportSubscription, Role, utcnow
from core.outbox import enqueue
from core.preferences import preferences_of
from core.reports import REPORTS
from core.reports.base import Kind, ReportResult, check_filters
from core.reports.export import header, label_of
from core.reports.params import ReportParams
from core.sql import supports_skip_locked

log = logging.getLogger(__name__)

EMAIL = "email"
BATCH = 20
CHECK_EVERY_SECONDS = 60.0
MAX_PER_OPERATOR = 20


def next_run(weekday: int, hour: int, zone: ZoneInfo, after: datetime) -> datetime:
    """The first `weekday` (0 = Monday) at `hour`:00 in `zone` strictly after `after`, UTC."""
    local = after.astimezone(zone)
    day = local.date() + timedelta(days=(weekday - local.weekday()) % 7)
    while True:
        candidate = datetime.combine(day, time(hour), zone)
        if candidate > after:
            return candidate.astimezone(ZoneInfo("UTC"))
        day += timedelta(days=7)


def week_before(run_at: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """The seven local days before the day of `run_at`."""
    end = run_at.astimezone(zone).date() - timedelta(days=1)
    return end - timedelta(days=6), end


async def _mailbox(session: AsyncSession, account_id: int) -> ChannelAccount:
    account = await session.get(ChannelAccount, account_id)
    if account is None or account.channel != EMAIL or not account.enabled:
        raise InvalidInput(
            f"no enabled email account with id {account_id}", field="channel_account_id"
        )
    return account


async def subscribe(
    session: AsyncSession,
    actor: Actor,
    *,
    report: str,
    params: ReportParams,
    channel_account_id: int,
    weekday: int,
    hour: int,
    time_zone: str,
    now: datetime,
) -> ReportSubscription:
    if actor.operator_id is None or not actor.is_supervisor:
        raise Forbidden("reports are emailed to supervisors and admins")
    found = REPORTS.get(report)
    if found is None:
        raise InvalidInput(f"no report {report!r}", field="report")
    if not 0 <= weekday <= 6:
        raise InvalidInput("a weekday is 0 (Monday) to 6 (Sunday)", field="weekday")
    if not 0 <= hour <= 23:
        raise InvalidInput("an hour is 0 to 23", field="hour")
    # The filters must suit the report now, not fail every week.
    today = now.date()
    try:
        check_filters(params.filters(today, today, time_zone), found.uses)
    except InvalidInput as exc:
        field = next(iter(exc.fields), "")
        raise InvalidInput(exc.message, field=f"filters.{field}") from None
    await _mailbox(session, channel_account_id)
    held = await session.scalar(
        select(ReportSubscription.id)
        .where(ReportSubscription.operator_id == actor.operator_id)
        .offset(MAX_PER_OPERATOR - 1)
        .limit(1)
    )
    if held is not None:
        raise InvalidInput(f"at most {MAX_PER_OPERATOR} report emails each", field="report")
    subscription = ReportSubscription(
        operator_id=actor.operator_id,
        report=report,
        filters=params.model_dump(mode="json", exclude_defaults=True),
        channel_account_id=channel_account_id,
        weekday=weekday,
        hour=hour,
        time_zone=time_zone,
        next_run_at=next_run(weekday, hour, ZoneInfo(time_zone), now),
        created_at=now,
    )
    session.add(subscription)
    await session.flush()
    await audit.record(
        session,
        actor,
        "report_subscription.create",
        "report_subscription",
        subscription.id,
        {"report": report, "weekday": weekday, "hour": hour},
    )
    return subscription


async def list_subscriptions(session: AsyncSession, actor: Actor) -> list[ReportSubscription]:
    return list(
        await session.scalars(
            select(ReportSubscription)
            .where(ReportSubscription.operator_id == actor.operator_id)
            .order_by(ReportSubscription.id)
        )
    )


async def unsubscribe(session: AsyncSession, actor: Actor, subscription_id: int) -> None:
    subscription = await session.get(ReportSubscription, subscription_id)
    if subscription is None or subscription.operator_id != actor.operator_id:
        raise NotFound(f"no report email {subscription_id} of yours")
    await session.delete(subscription)
    await audit.record(
        session, actor, "report_subscription.delete", "report_subscription", subscription_id, {}
    )


async def mailboxes(session: AsyncSession) -> list[ChannelAccount]:
    return list(
        await session.scalars(
            select(ChannelAccount)
            .where(ChannelAccount.channel == EMAIL, ChannelAccount.enabled.is_(True))
            .order_by(ChannelAccount.name, ChannelAccount.id)
        )
    )


# --- sending ------------------------------------------------------------------------------------


async def send_due(session: AsyncSession, now: datetime, *, public_url: str | None) -> int:
    """Send the report emails due at `now` (up to `BATCH`); how many were queued. The caller
    commits (one transaction for all, or call once per batch)."""
    query = (
        select(ReportSubscription)
        .where(ReportSubscription.next_run_at <= now)
        .order_by(ReportSubscription.next_run_at, ReportSubscription.id)
        .limit(BATCH)
    )
    if supports_skip_locked(session):
        query = query.with_for_update(skip_locked=True)
    sent = 0
    for subscription in list(await session.scalars(query)):
        zone = ZoneInfo(subscription.time_zone)
        run_at = subscription.next_run_at
        subscription.next_run_at = next_run(subscription.weekday, subscription.hour, zone, now)
        operator = await session.get(Operator, subscription.operator_id)
        if operator is None or not operator.active or operator.role == Role.OPERATOR:
            log.info("report email %d: its operator no longer receives reports", subscription.id)
            await session.delete(subscription)
            continue
        account = await session.get(ChannelAccount, subscription.channel_account_id)
        if account is None or not account.enabled:
            log.warning("report email %d: its mailbox is disabled; skipped", subscription.id)
            continue
        report = REPORTS.get(subscription.report)
        if report is None:
            await session.delete(subscription)
            continue
        start, end = week_before(run_at, zone)
        params = ReportParams.model_validate(subscription.filters)
        result = await report.run(session, params.filters(start, end, subscription.time_zone), now)
        tr = translator(preferences_of(operator).locale)
        link = _link(public_url, subscription.report, subscription.filters, start, end)
        subject, text, body = render(result, tr, link)
        await enqueue(
            session,
            channel=EMAIL,
            recipient=operator.email,
            payload={
                "subject": subject,
                "text": text,
                "html": body,
                "account_id": account.id,
                "automatic": True,
            },
        )
        subscription.last_sent_at = now
        sent += 1
    await session.flush()
    return sent


def _link(
    public_url: str | None, report: str, filters: dict[str, Any], start: date, end: date
) -> str | None:
    if not public_url:
        return None
    query = {"report": report, "start": start.isoformat(), "end": end.isoformat()}
    query |= {key: str(value) for key, value in filters.items()}
    return f"{public_url.rstrip('/')}/reports/#{urlencode(query)}"


def render(result: ReportResult, tr: Translator, link: str | None) -> tuple[str, str, str]:
    """The email's subject, plain text and HTML: the report's table in the reader's words."""
    title = tr.gettext(result.title)
    period = f"{result.filters.start.isoformat()} \N{EN DASH} {result.filters.end.isoformat()}"
    subject = tr.gettext("Weekly report: {title}, {period}", title=title, period=period)
    labels = header(result, tr)
    cells = [
        [_shown(row, column.key, column.kind, tr) for column in result.columns]
        for row in result.rows
    ]
    lines = [subject, ""]
    lines += [" | ".join(labels)] + [" | ".join(row) for row in cells]
    if not cells:
        lines.append(tr.gettext("Nothing in this period."))
    lines += ["", *(tr.gettext(note) for note in result.notes)]
    if link:
        lines += ["", tr.gettext("Open it in omnicrm: {link}", link=link)]
    head = "".join(
        f'<th style="text-align:left;padding:4px 8px;border-bottom:1px solid #ccc">'
        f"{html.escape(label)}</th>"
        for label in labels
    )
    body_rows = "".join(
        "<tr>"
        + "".join(f'<td style="padding:4px 8px">{html.escape(cell)}</td>' for cell in row)
        + "</tr>"
        for row in cells
    )
    parts = [
        f'<h1 style="font-size:18px">{html.escape(title)}</h1>',
        f"<p>{html.escape(period)}</p>",
        f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body_rows}</tbody></table>"
        if cells
        else f"<p>{html.escape(tr.gettext('Nothing in this period.'))}</p>",
        *(f'<p style="color:#555">{html.escape(tr.gettext(note))}</p>' for note in result.notes),
    ]
    if link:
        parts.append(
            f'<p><a href="{html.escape(link, quote=True)}">'
            f"{html.escape(tr.gettext('Open it in omnicrm'))}</a></p>"
        )
    return subject, "\n".join(lines), "\n".join(parts)


def _shown(row: dict[str, Any], key: str, kind: Kind, tr: Translator) -> str:
    value = label_of(row, key, tr)
    if value is None:
        return "-"
    if kind is Kind.SHARE:
        return f"{tr.format_number(round(float(value) * 100, 1))} %"
    if kind is Kind.SECONDS:
        return _duration(int(value), tr)
    if kind is Kind.DAYS:
        return tr.gettext("{n} d", n=tr.format_number(float(value)))
    if kind is Kind.COUNT:
        return tr.format_number(int(value))
    return str(value)


def _duration(seconds: int, tr: Translator) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return tr.gettext("{h} h {m} min", h=hours, m=minutes)
    if minutes:
        return tr.gettext("{m} min", m=minutes)
    return tr.gettext("{s} s", s=seconds)


async def run(
    sessions: SessionFactory,
    stop: asyncio.Event,
    *,
    public_url: str | None,
    every_seconds: float = CHECK_EVERY_SECONDS,
) -> None:
    """Send due report emails every `every_seconds` until `stop` (the app's background)."""
    while not stop.is_set():
        try:
            while True:
                async with transaction(sessions) as session:
                    sent = await send_due(session, utcnow(), public_url=public_url)
                if sent:
                    log.info("queued %d report emails", sent)
                if sent < BATCH:
                    break
        except Exception:
            log.exception("sending report emails failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
