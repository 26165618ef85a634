"""Comparison reports: a `zhbert compare` runs folder → report.md, report.json and plots (issue 7)."""

from zhbert.report.collect import Runs, RunsError, collect
from zhbert.report.write import Report, write_report

__all__ = ["Report", "Runs", "RunsError", "collect", "write_report"]
