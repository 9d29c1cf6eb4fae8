"""What every migration strategy shares: its parameters (the UI form), its run in the control store, and how the
validation's outcome is written into the report."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shiftover.adapters.config import Config
from shiftover.adapters.strategies import Strategy, summaries
from shiftover.control.store import ControlStore
from shiftover.expectations.suites import CollectionEvidence, ValidationResult
from shiftover.tasks.digests import digests_equal
from shiftover.tasks.report_model import REPORT_DIR, ExpectationReport, MigrationReport


class MigrateParams(BaseModel):
    """The migrate flow's parameters, in the order of its form: what every strategy reads, then each strategy's own
    fields (their titles name the strategy), then where things are. The flow's signature (flows/migrate.py) lists
    the same names with the same defaults; titles and descriptions here are what the Prefect UI shows
    (deployments/forms.py)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(title="Source provider", description="the provider in backends.yaml to copy from")
    target: str = Field(title="Target provider", description="the provider in backends.yaml to copy to")
    strategy: Strategy | None = Field(None, title="Strategy", description=summaries() + " (empty: backends.yaml's "
                                      "migration.strategy, immediate unless set)")
    collections: list[str] | None = Field(None, title="Collections",
                                          description="collections to move; empty means all")
    dry_run: bool = Field(False, title="Dry run", description="print the plan and change nothing")
    switch: bool = Field(True, title="Switch when the checks pass",
                         description="move the active pointer to the target when the suites pass")
    batch_size: int | None = Field(None, ge=1, title="Batch size (records)",
                                   description="records per batch (empty: migration.batch_size in backends.yaml)")
    chunk_rows: int | None = Field(None, ge=1, title="Chunk size (records)", description="records per key-range "
                                   "chunk (empty: migration.chunk_rows in backends.yaml)")
    workers: int | None = Field(None, ge=1, le=64, title="Workers", description="chunks copied at once (empty: "
                                "migration.workers in backends.yaml)")
    approve_cutover: bool = Field(False, title="Blue-green: wait for approval",
                                  description="blue_green only: pause before the freeze until someone approves the "
                                              "cutover in the Prefect UI")
    approval_timeout_s: float = Field(3600, gt=0, title="Blue-green: approval timeout (seconds)",
                                      description="blue_green only: a cutover not approved within this time is "
                                                  "abandoned")
    release_source: bool = Field(False, title="Blue-green: release the old primary",
                                 description="blue_green only: lift the old primary's write fence at once (no "
                                             "rollback)")
    max_lag: int = Field(100, ge=1, title="Blue-green and gradual: maximum lag (changes)",
                         description="blue_green and gradual: freeze once fewer captured changes than this wait")
    catchup_timeout_s: float = Field(600, gt=0, title="Blue-green and gradual: catch-up timeout (seconds)",
                                     description="blue_green and gradual: give up catching up to the maximum lag "
                                                 "after this long")
    chunks_per_run: int | None = Field(None, ge=1, title="Gradual: chunks per run",
                                       description="gradual only: key-range chunks copied per run (empty: all)")
    runner: Literal["threads", "dask"] = Field("threads", title="Blue-green and gradual: runner",
                                               description="blue_green and gradual: where chunks are copied, on "
                                                           "threads in this process or on Dask (prefect-dask)")
    dask_address: str | None = Field(None, title="Blue-green and gradual: Dask scheduler",
                                     description="with the dask runner: a running scheduler, tcp://HOST:PORT "
                                                 "(empty: migration.dask_address, else a local cluster)")
    run_id: str | None = Field(None, title="Resume run", description="the id of a run to resume (empty: an "
                               "unfinished run of the same source, target, strategy and collections resumes)")
    report_dir: str = Field(REPORT_DIR, title="Report folder", description="where the self-contained HTML report "
                            "is written, as seen by the worker (a relative path: beside backends.yaml)")
    config_path: str = Field("backends.yaml", title="Path of backends.yaml",
                             description="path of backends.yaml as seen by the worker")

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
