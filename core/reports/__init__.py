"""Reports on the stored history: contact center (volume, response times, SLA, abandonment,
reopens) and sales (sources, funnel, owners). Each is a `Report` (core/reports/base.py);
this is the list the API, the reports page and the scheduled emails offer."""

from __future__ import annotations

from typing import Final

from core.reports.base import Report
from core.reports.contact_center import Performance, Volume
from core.reports.sales import Funnel, LeadSources, SalesByOwner

REPORTS: Final[dict[str, Report]] = {
    report.name: report
    for report in (Volume(), Performance(), LeadSources(), Funnel(), SalesByOwner())
}
