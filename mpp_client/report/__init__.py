"""``mpp report``: where the money went, at a glance.

``build_report`` reads the journal once into a ``Report`` (spend per day, per origin, per
method, the caps with used/left, the payments whose outcome is not final); ``render_text``
draws it for a terminal and ``render_html`` as one self-contained HTML page (inline SVG and a
little inline JavaScript for the origin and date filters; nothing is fetched from the network).
Amounts are integers of base units per currency; nothing secret is in a report.
"""

from __future__ import annotations

from mpp_client.report.caps import CapUsage, cap_usage
from mpp_client.report.model import (
    DayTotal,
    GroupRow,
    Report,
    ReportEntry,
    build_report,
    money_status,
    summarize,
)
from mpp_client.report.page import render_html
from mpp_client.report.terminal import render_text

__all__ = [
    "CapUsage",
    "DayTotal",
    "GroupRow",
    "Report",
    "ReportEntry",
    "build_report",
    "cap_usage",
    "money_status",
    "render_html",
    "render_text",
    "summarize",
]
