"""Reports API routes (supervisors and admins): the list of reports, each report as JSON for
the reports page and BI tools, and as a CSV or XLSX file. Filters are query parameters; lists
are comma-separated (`queue_id=1,2`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import NotFound
from core.i18n import translator
from core.models import Operator, utcnow
from core.preferences import known_time_zone, preferences_of
from core.reports import REPORTS
from core.reports.base import Granularity, Report, ReportFilters, ReportResult
from core.reports.export import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from web.api import SUPERVISORS, ApiRoutes, Call, NoBody

routes = ApiRoutes(tag="reports")

MAX_LISTED = 50


def _ids(value: Any) -> tuple[int, ...]:
    if value in (None, ""):
        return ()
    parts = [part.strip() for part in str(value).split(",") if part.strip()]
    if len(parts) > MAX_LISTED:
        raise ValueError(f"at most {MAX_LISTED} ids")
    ids = []
    for part in parts:
        if not part.isdigit() or not 0 < int(part) < 2**63:
            raise ValueError(f"{part!r} is not a record id")
        ids.append(int(part))
    return tuple(ids)


def _words(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    parts = tuple(part.strip() for part in str(value).split(",") if part.strip())
    if len(parts) > MAX_LISTED or any(len(part) > 100 for part in parts):
        raise ValueError(f"at most {MAX_LISTED} values of at most 100 characters")
    return parts


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date = Field(description="the first day, in time_zone")
    end: date = Field(description="the last day (included)")
    time_zone: str | None = Field(
        None, max_length=64, description="IANA name; default: your preferences' time zone"
    )
    granularity: Granularity = Field(Granularity.DAY, description="time series: day or week")
    queue_id: str | None = Field(None, max_length=1000, description="queue ids, comma-separated")
    channel: str | None = Field(None, max_length=1000, description="channels, comma-separated")
    operator_id: str | None = Field(
        None, max_length=1000, description="assignees (contact center) or lead owners (sales)"
    )
    source: str | None = Field(None, max_length=2000, description="lead sources (sales)")
    pipeline_id: int | None = Field(None, gt=0, lt=2**63, description="sales: one pipeline")
    group_by: Literal["queue", "operator"] = Field(
        "queue", description="performance: a row per queue or per operator"
    )

    @field_validator("queue_id", "operator_id")
    @classmethod
    def _check_ids(cls, value: str | None) -> str | None:
        _ids(value)
        return value

    @field_validator("channel", "source")
    @classmethod
    def _check_words(cls, value: str | None) -> str | None:
        _words(value)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value in (None, "") else known_time_zone(str(value))

    def filters(self, time_zone: str) -> ReportFilters:
        return ReportFilters(
            start=self.start,
            end=self.end,
            time_zone=self.time_zone or time_zone,
            granularity=self.granularity,
            queue_ids=_ids(self.queue_id),
            channels=_words(self.channel),
            operator_ids=_ids(self.operator_id),
            sources=_words(self.source),
            pipeline_id=self.pipeline_id,
            group_by=self.group_by,
        )


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


async def _run(call: Call[NoBody, Any], query: ReportQuery) -> tuple[ReportResult, str]:
    report = report_named(call.request.match_info["name"])
    async with call.sessions() as session:
        locale, time_zone = "en", "UTC"
        if call.actor.operator_id is not None:
            operator = await session.get(Operator, call.actor.operator_id)
            if operator is not None:
                preferences = preferences_of(operator)
                locale = preferences.locale
                time_zone = preferences.time_zone or "UTC"
        result = await report.run(session, query.filters(time_zone), utcnow())
    return result, locale


@routes.get(
    "/api/v1/reports",
    summary="The reports there are, with the filters each takes",
    roles=SUPERVISORS,
    response=list[ReportInfoOut],
)
async def list_reports(call: Call[NoBody, NoBody]) -> list[ReportInfoOut]:
    return [
        ReportInfoOut(
            name=report.name,
            title=report.title,
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
