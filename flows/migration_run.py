"""What every migration strategy shares: its parameters (the UI form), its run in the control store, and how the
validation's outcome is written into the report."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from shiftover.adapters.config import Config
from shiftover.adapters.strategies import Strategy, summaries
from shiftover.control.store import ControlStore
from shiftover.expectations.suites import CollectionEvidence, ValidationResult
from shiftover.tasks.digests import digests_equal
from shiftover.tasks.report_model import REPORT_DIR, ExpectationReport, MigrationReport


class MigrateParams(BaseModel):
    source: str = Field(description="provider name in backends.yaml to copy from")
    target: str = Field(description="provider name in backends.yaml to copy to")
    strategy: Strategy | None = Field(None, description=summaries() + " (empty: backends.yaml's migration.strategy, "
                                      "immediate unless set)")
    collections: list[str] | None = Field(None, description="collections to move; empty means all")
    dry_run: bool = Field(False, description="print the plan and change nothing")
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    batch_size: int | None = Field(None, ge=1, description="records per batch (default from the config)")
    chunk_rows: int | None = Field(None, ge=1, description="records per key-range chunk (default from the config)")
    workers: int | None = Field(None, ge=1, le=64, description="chunks copied at once (default from the config)")
    switch: bool = Field(True, description="move the active pointer to the target when the suites pass")
    run_id: str | None = Field(None, description="resume this run; by default an unfinished identical run resumes")
    approve_cutover: bool = Field(False, description="blue_green: pause before the freeze until approved in the UI")
    approval_timeout_s: float = Field(3600, gt=0, description="a cutover not approved within this time is abandoned")
    max_lag: int = Field(100, ge=1, description="live strategies: freeze once fewer changes than this wait")
    catchup_timeout_s: float = Field(600, gt=0, description="give up catching up to max_lag after this long")
    chunks_per_run: int | None = Field(None, ge=1, description="gradual: chunks copied per run (empty: all)")
    release_source: bool = Field(False, description="blue_green: lift the old primary's write fence at once "
                                 "(no rollback)")
    runner: Literal["threads", "dask"] = Field("threads", description="where chunks run: threads in this process, "
                                               "or Dask (prefect-dask)")
    dask_address: str | None = Field(None, description="dask: a running scheduler, tcp://HOST:PORT (default: "
                                                       "migration.dask_address, else a local cluster)")
    report_dir: str = Field(REPORT_DIR, description="where the self-contained HTML report is written, as seen by "
                                                    "the worker (a relative path: beside backends.yaml)")


    def resolved(self, config: Config) -> MigrateParams:
        """These parameters with the strategy backends.yaml names when none was given."""
        if self.strategy is not None:
            return self
        return self.model_copy(update={"strategy": Strategy.of(config.migration.strategy)})


def fingerprint(p: MigrateParams) -> str:
    cols = ",".join(sorted(p.collections)) if p.collections else "*"
    return f"migrate|{p.source}|{p.target}|{p.strategy}|{cols}"


def resolve_run_id(control: ControlStore, p: MigrateParams) -> str:
    return p.run_id or control.open_run(fingerprint(p)) or uuid.uuid4().hex[:12]


def begin_run(control: ControlStore, p: MigrateParams, report: MigrationReport, phase: str | None = None) -> str:
    """Start (or resume) the run of these parameters in the control store, with its planned rows; its id."""
    run_id = report.run_id = resolve_run_id(control, p)
    control.start_run(run_id, kind="migrate", source=p.source, target=p.target, strategy=p.strategy,
                      fingerprint=fingerprint(p))
    control.set_summary(run_id, {"planned_rows": report.rows, **({"phase": phase} if phase else {})})
    return run_id


def record_validation(report: MigrationReport, measured: list[CollectionEvidence], result: ValidationResult) -> None:
    mismatched = result.mismatched_ranges()
    by_name = {e.collection: e for e in measured}
    for c in report.collections:
        e = by_name[c.name]
        c.source_rows, c.target_rows = e.source_rows, e.target_rows  # as measured in the frozen source, not as planned
        c.digests_equal = digests_equal(e)
        c.digest_method = e.digest_method
        c.mismatched_ranges = mismatched.get(c.name, [])
    report.expectations = [ExpectationReport(suite=o.suite, expectation=o.expectation, success=o.success,
                                             detail=o.detail) for o in result.outcomes]
