"""Reports API routes (supervisors and admins): the list of reports, each report as JSON for
the reports page and BI tools, and as a CSV or XLSX file. Filters are query parameters; lists
are comma-separated (`queue_id=1,2`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.i18n import translator
from core.models import Operator, utcnow
from core.preferences import preferences_of
from core.reports import REPORTS, schedule
from core.reports.base import Report, ReportResult
from core.reports.export import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from core.reports.params import ReportParams
from web.api import SUPERVISORS, ApiRoutes, Call, NoBody, TimeZoneName

routes = ApiRoutes(tag="reports")


class ReportQuery(ReportParams):
    start: date = Field(description="the first day, in time_zone")
    end: date = Field(description="the last day (included)")
    time_zone: TimeZoneName = Field(None, description="IANA name; default: your preferences' one")


class ExportQuery(ReportQuery):
    format: Literal["csv", "xlsx"] = "csv"


class ReportInfoOut(BaseModel):
    name: str
    title: str
    area: Literal["contact_center", "sales"]
    filters: list[str] = Field(description="the filters it takes beyond the period")


class ReportColumnOut(BaseModel):
    key: str
    label: str
    kind: str = Field(description="text, count, seconds, share (0 to 1), money, days or date")


class ChartOut(BaseModel):
    kind: str = Field(description="bar, line or funnel")
    x: str
    y: list[str]
    series: str | None


class ReportOut(BaseModel):
    name: str
    title: str
    filters: dict[str, Any]
    columns: list[ReportColumnOut]
    rows: list[dict[str, Any]]
    chart: ChartOut
    notes: list[str]
    generated_at: datetime


FILTER_NAMES = {
    "queue_ids": "queue_id",
    "channels": "channel",
    "operator_ids": "operator_id",
    "sources": "source",
    "pipeline_id": "pipeline_id",
    "granularity": "granularity",
    "group_by": "group_by",
}


def report_named(name: str) -> Report:
    report = REPORTS.get(name)
    if report is None:
        raise NotFound(f"no report {name!r} (reports: {', '.join(REPORTS)})")
    return report


def report_out(result: ReportResult, locale: str) -> ReportOut:
    tr = translator(locale)
    return ReportOut(
        name=result.name,
        title=tr.gettext(result.title),
        filters=result.filters.as_json(),
        columns=[
            ReportColumnOut(key=column.key, label=column.label, kind=column.kind.value)
            for column in result.columns
        ],
        rows=result.rows,
        chart=ChartOut(
            kind=result.chart.kind,
            x=result.chart.x,
            y=list(result.chart.y),
            series=result.chart.series,
        ),
        notes=[tr.gettext(note) for note in result.notes],
        generated_at=result.generated_at,
    )


async def _preferences(session: AsyncSession, call: Call[Any, Any]) -> tuple[str, str]:
    """The caller's locale and time zone (English and UTC for tokens without an operator)."""
    if call.actor.operator_id is not None:
        operator = await session.get(Operator, call.actor.operator_id)
        if operator is not None:
            preferences = preferences_of(operator)
            return preferences.locale, preferences.time_zone or "UTC"
    return "en", "UTC"


async def _run(call: Call[NoBody, Any], query: ReportQuery) -> tuple[ReportResult, str]:
    report = report_named(call.request.match_info["name"])
    async with call.sessions() as session:
        locale, time_zone = await _preferences(session, call)
        filters = query.filters(query.start, query.end, query.time_zone or time_zone)
        result = await report.run(session, filters, utcnow())
    return result, locale


@routes.get(
    "/api/v1/reports",
    summary="The reports there are, with the filters each takes",
    roles=SUPERVISORS,
    response=list[ReportInfoOut],
)
async def list_reports(call: Call[NoBody, NoBody]) -> list[ReportInfoOut]:
    async with call.sessions() as session:
        locale, _ = await _preferences(session, call)
    tr = translator(locale)
    return [
        ReportInfoOut(
            name=report.name,
            title=tr.gettext(report.title),
            area="sales" if report.area == "sales" else "contact_center",
            filters=sorted(FILTER_NAMES[name] for name in report.uses),
        )
        for report in REPORTS.values()
    ]


@routes.get(
    "/api/v1/reports/{name}",
    summary=(
        "A report over a period (local days, both included): its columns, rows and chart;"
        " for the reports page and BI tools"
    ),
    roles=SUPERVISORS,
    query=ReportQuery,
    response=ReportOut,
)
async def get_report(call: Call[NoBody, ReportQuery]) -> ReportOut:
    result, locale = await _run(call, call.query)
    return report_out(result, locale)


@routes.get(
    "/api/v1/reports/{name}/export",
    summary="A report's table as a CSV (UTF-8) or XLSX file, labels in your language",
    roles=SUPERVISORS,
    query=ExportQuery,
)
async def export_report(call: Call[NoBody, ExportQuery]) -> web.StreamResponse:
    result, locale = await _run(call, call.query)
    tr = translator(locale)
    if call.query.format == "xlsx":
        body, content_type, suffix = to_xlsx(result, tr), XLSX_TYPE, "xlsx"
    else:
        body, content_type, suffix = to_csv(result, tr), CSV_TYPE, "csv"
    filename = f"{result.name}-{result.filters.start}-{result.filters.end}.{suffix}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "private, no-store",
        },
    )


# --- weekly emails ------------------------------------------------------------------------------


class SubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report: str = Field(max_length=40, description="a report's name (GET /api/v1/reports)")
    filters: ReportParams = Field(
        default_factory=ReportParams, description="the report's filters but the period"
    )
    channel_account_id: int = Field(gt=0, lt=2**63, description="the email account it is sent from")
    weekday: int = Field(0, ge=0, le=6, description="0 = Monday")
    hour: int = Field(8, ge=0, le=23, description="in time_zone")
    time_zone: TimeZoneName = Field(None, description="IANA name; default: your preferences' one")


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    report: str
    filters: dict[str, Any]
    channel_account_id: int
    weekday: int
    hour: int
    time_zone: str
    next_run_at: datetime
    last_sent_at: datetime | None


class MailboxOut(BaseModel):
    id: int
    name: str
    address: str


@routes.get(
    "/api/v1/report-subscriptions",
    summary="Your weekly report emails",
    roles=SUPERVISORS,
    response=list[SubscriptionOut],
)
async def list_subscriptions(call: Call[NoBody, NoBody]) -> list[SubscriptionOut]:
    async with call.sessions() as session:
        found = await schedule.list_subscriptions(session, call.actor)
        return [SubscriptionOut.model_validate(item) for item in found]


@routes.get(
    "/api/v1/report-subscriptions/mailboxes",
    summary="The email accounts a weekly report can be sent from",
    roles=SUPERVISORS,
    response=list[MailboxOut],
)
async def list_mailboxes(call: Call[NoBody, NoBody]) -> list[MailboxOut]:
    async with call.sessions() as session:
        accounts = await schedule.mailboxes(session)
    return [
        MailboxOut(
            id=account.id, name=account.name, address=str(account.settings.get("address", ""))
        )
        for account in accounts
    ]


@routes.post(
    "/api/v1/report-subscriptions",
    summary=(
        "Email yourself a report every week (the seven days before), from a mailbox you choose"
    ),
    roles=SUPERVISORS,
    body=SubscriptionBody,
    response=SubscriptionOut,
    status=201,
)
async def create_subscription(call: Call[SubscriptionBody, NoBody]) -> SubscriptionOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        time_zone = body.time_zone or (await _preferences(session, call))[1]
        subscription = await schedule.subscribe(
            session,
            call.actor,
            report=body.report,
            params=body.filters,
            channel_account_id=body.channel_account_id,
            weekday=body.weekday,
            hour=body.hour,
            time_zone=time_zone,
            now=utcnow(),
        )
        return SubscriptionOut.model_validate(subscription)


@routes.delete(
    "/api/v1/report-subscriptions/{id}",
    summary="Stop one of your weekly report emails",
    roles=SUPERVISORS,
    status=204,
)
async def delete_subscription(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await schedule.unsubscribe(session, call.actor, call.path_int("id"))
    return web.Response(status=204)
