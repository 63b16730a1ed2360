"""Figures (matplotlib, Agg) and a self-contained HTML report from real runs in the database
and from simulation results."""

from __future__ import annotations

from greengrader.reports.build import ReportData, build_report

__all__ = ["ReportData", "build_report"]
