"""A migration's report as data: per collection, per expectation, and the whole run (pydantic; no Prefect). The control
store keeps it as the run's summary; tasks/report_views.py draws it and tasks/reporting.py publishes it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

REPORT_DIR = "reports/migrations"  # where the HTML page goes unless the run names a directory


class CollectionReport(BaseModel):
    name: str
    source_rows: int
    target_rows: int | None = None
    chunks: int = 0
    digests_equal: bool | None = None
    digest_method: str = ""
    mismatched_ranges: list[str] = Field(default_factory=list)
    path: str = ""
    seconds: float = 0.0


class ExpectationReport(BaseModel):
    suite: str
    expectation: str
    success: bool
    detail: str


class MigrationReport(BaseModel):
    run_id: str
    source: str
    target: str
    strategy: str
    status: str  # "switched", "validated" (copied and validated, --no-switch), "dry-run", "blocked", "failed"…
    dry_run: bool = False
    collections: list[CollectionReport] = Field(default_factory=list)
    expectations: list[ExpectationReport] = Field(default_factory=list)
    epoch_before: int | None = None
    epoch_after: int | None = None
    active_after: str | None = None
    frozen_engine: list[str] = Field(default_factory=list)
    freeze_ms: float | None = None
    # immediate: plan, freeze, copy, index, validate, switch
    phase_seconds: dict[str, float] = Field(default_factory=dict)
    estimated_seconds: float | None = None
    started: dt.datetime
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    report_dir: str = Field(REPORT_DIR, exclude=True)  # where publish_report writes the HTML page (not a finding)

    @property
    def rows(self) -> int:
        return sum(c.source_rows for c in self.collections)
