"""A report's filters as a caller writes them (query parameters; lists comma-separated), the
one parser behind the API, the reports page and the stored filters of weekly emails."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.reports.base import Granularity, ReportFilters

MAX_LISTED = 50


def ids_of(value: Any) -> tuple[int, ...]:
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


def words_of(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    parts = tuple(part.strip() for part in str(value).split(",") if part.strip())
    if len(parts) > MAX_LISTED or any(len(part) > 100 for part in parts):
        raise ValueError(f"at most {MAX_LISTED} values of at most 100 characters")
    return parts


class ReportParams(BaseModel):
    """Every filter but the period."""

    model_config = ConfigDict(extra="forbid")

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
        ids_of(value)
        return value

    @field_validator("channel", "source")
    @classmethod
    def _check_words(cls, value: str | None) -> str | None:
        words_of(value)
        return value

    def filters(self, start: date, end: date, time_zone: str) -> ReportFilters:
        return ReportFilters(
            start=start,
            end=end,
            time_zone=time_zone,
            granularity=self.granularity,
            queue_ids=ids_of(self.queue_id),
            channels=words_of(self.channel),
            operator_ids=ids_of(self.operator_id),
            sources=words_of(self.source),
            pipeline_id=self.pipeline_id,
            group_by=self.group_by,
        )
