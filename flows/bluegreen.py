"""The blue-green strategy of `migrate`, and the chunk-copy subflow that every live strategy scales out with.

capture on blue → copy key-range chunks while the app writes → catch-up passes until the lag is under `max_lag`
→ per-range digests kept current (only ranges touched since are re-digested) → optional approval pause → one task
for the freeze window: engine freeze, final delta, re-digest what it touched, GX suites, capture on green, pointer
CAS → blue stays write-fenced (engine freeze) for rollback until `shiftover release`.

Every step is resumable: chunks and watermarks are checkpointed in the control store, the change log lives in the
source engine until acknowledged, and a re-run after a crash right after the switch only finishes the bookkeeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.input import RunInput
from pydantic import Field

from shiftover.adapters.config import Config
from shiftover.adapters.errors import BackendError, CutoverBlocked, MigrationFailed
from shiftover.adapters.postgres.schema import KEYS
from shiftover.control.store import ControlStore, Pointer
from shiftover.expectations.suites import CollectionEvidence
from shiftover.flows.migration_run import MigrateParams, begin_run, record_validation
from shiftover.flows.task_runners import dask_address, task_runner
from shiftover.tasks.capture import (
    CatchUp,
    DigestBook,
    LivePlan,
    catch_up,
    cutover_window,
    digest_boundaries,
    digest_ranges,
    fence,
    keyless_advice,
    lift_fence,
    pause_point,
    plan_live,
    start_capture,
    stop_capture,
    switched_by,
)
from shiftover.tasks.migration import (
    ChunkPlan,
    ChunkResult,
    CollectionPlan,
    copy_chunk,
    prepare_target,
    run_expectations,
    unfreeze_source,
)
from shiftover.tasks.report_model import CollectionReport, MigrationReport
from shiftover.tasks.reporting import (
    ProgressFeed,
    advance_progress,
    artifact_key,
    completed,
    publish_report,
    start_progress,
)
from shiftover.tasks.schema import apply_post_data, apply_pre_data, forget_dump, plan_schema


class CutoverApproval(RunInput):
    approve: bool = Field(False, description="cut over now (false: end the run; the pointer stays)")
    comment: str = Field("", description="why; kept in the run's report")


@flow(name="copy-chunks", log_prints=False)
def copy_chunks(config_path: str, run_id: str, source: str, target: str, collections: list[str], batch_size: int,
                progress_id: str | None = None, total_rows: int = 0, limit: int | None = None) -> int:
    """Copy the run's chunks not yet done (at most `limit`), mapped over this flow's task runner. Each chunk is a
    retryable task that opens its own adapters from the config file, so it runs the same in a thread or on a Dask
    worker process."""
    from shiftover.adapters.config import load_config
    from shiftover.tasks.migration import control_store

    with control_store(load_config(config_path)) as control:
        todo = [ChunkPlan(config_path, run_id, source, target, c.collection, c.idx, c.range, batch_size)
                for c in control.chunks(run_id) if c.collection in collections and not c.done]
        if limit is not None:
            todo = todo[:limit]
        if not todo:
            return 0
        feed = ProgressFeed(progress_id if total_rows else None, control, run_id, total_rows)
        rows = 0
        for f in completed(list(copy_chunk.map(todo)), feed):
            res: ChunkResult = f.result()
            rows += res.rows
        feed.tick(force=True)
        return rows


def run_copy(config: Config, params: MigrateParams, run_id: str, names: list[str], workers: int,
             progress_id: str | None, total: int, limit: int | None = None) -> int:
    address = dask_address(config, params.dask_address) if params.runner == "dask" else None
    runner = task_runner(params.runner, workers, address)
    sub = copy_chunks.with_options(task_runner=runner)
    return sub(str(config.path), run_id, params.source, params.target, names,
               params.batch_size or config.migration.batch_size, progress_id, total, limit)


def copy_workers(config: Config, params: MigrateParams, live: LivePlan) -> int:
    from shiftover.adapters.registry import adapter_class, provider_config

    workers = params.workers or config.migration.workers
    target_kind = provider_config(config, params.target).kind
    serial_target = not adapter_class(target_kind).offers.concurrent_writes
    if serial_target:  # one writer at a time (SQLite), whatever the copy path
        return 1
    return workers


def catch_up_all(config_path: str, run_id: str, source: str, target: str, names: Sequence[str], *,
                 max_lag: int, timeout_s: float, phase: str = "catchup", track: bool = False) -> list[CatchUp]:
    """Passes until every collection's lag is under `max_lag` (or the timeout); returns every pass."""
    passes: list[CatchUp] = []
    deadline = time.monotonic() + timeout_s
    while True:
        round_ = [catch_up(config_path, run_id, source, target, n, max_changes=50_000, track=track, phase=phase,
                           until_below=max_lag) for n in names]
        passes += round_
        if len(passes) == len(names):
            pause_point("catchup")
        if all(r.pending < max_lag for r in round_) or time.monotonic() > deadline:
            return passes


def converge_digests(config_path: str, run_id: str, params: MigrateParams,
                     books: list[DigestBook], names: Sequence[str], dirty: dict[str, set[int]], *,
                     rounds: int = 8) -> list[CatchUp]:
    """Re-digest dirty ranges, catch up, repeat until few ranges are dirty: what is left for the freeze window is
    only the ranges the last changes touched."""
    passes: list[CatchUp] = []
    for _ in range(rounds):
        for book in books:
            idx = sorted(dirty.get(book.name, set()) | book.missing())
            if idx:
                ranges = book.ranges
                s, t, method = digest_ranges(config_path, params.source, params.target, book.name,
                                             [ranges[i] for i in idx])
                book.update(idx, s, t, method)
        round_ = catch_up_all(config_path, run_id, params.source, params.target, names, max_lag=params.max_lag,
                              timeout_s=params.catchup_timeout_s, track=True)
        passes += round_
        dirty = {b.name: b.dirty_of([k for r in round_ if r.collection == b.name for k in r.keys]) for b in books}
        if sum(len(v) for v in dirty.values()) <= max(4, sum(len(b.boundaries) + 1 for b in books) // 50):
            break
    for book in books:  # the freeze window re-digests what is still dirty
        for i in dirty.get(book.name, set()):
            book.source.pop(i, None)
            book.target.pop(i, None)
    return passes


def build_books(config_path: str, source: str, plans: Sequence[CollectionPlan], chunk_rows: int) -> list[DigestBook]:
    """Digest ranges of about a thousandth of each collection (at least 500 records), so the freeze window
    re-digests only the few small ranges the last changes touched."""
    books = []
    for p in plans:
        every = max(500, min(chunk_rows, math.ceil(max(p.rows, 1) / 1000)))
        books.append(DigestBook(p.name, digest_boundaries(config_path, source, p.name, every)))
    return books


def evidence_of(books: list[DigestBook], live: LivePlan) -> list[CollectionEvidence]:
    by_name = {p.name: p for p in live.plans}
    out = []
    for b in books:
        idx = [i for i in range(len(b.boundaries) + 1) if i in b.source]
        out.append(CollectionEvidence(b.name, sum(b.source[i].count for i in idx), sum(b.target[i].count for i in idx),
                                      [b.source[i] for i in idx], [b.target[i] for i in idx],
                                      by_name[b.name].schema, by_name[b.name].schema, b.method))
    return out


def plan_and_check(params: MigrateParams, config: Config, report: MigrationReport) -> tuple[LivePlan, list[str]]:
    """Plan a live migration, fill the report's collections, and list what stops it (keyless tables, no capture)."""
    chunk_rows = params.chunk_rows or config.migration.chunk_rows
    live = plan_live(str(config.path), params.source, params.target, params.collections, chunk_rows)
    report.collections = [CollectionReport(name=p.name, source_rows=p.rows, chunks=len(p.ranges), path=p.path)
                          for p in live.plans]
    # the schema move's plan: a target that cannot hold the schema is refused here, before capture or a freeze
    report.notes += list(plan_schema(str(config.path), None, params.source, params.target,
                                     [p.name for p in live.plans]).notes)
    problems = []
    if live.keyless:
        problems.append(keyless_advice(live.keyless))
    if live.capture is None:
        problems.append(f"the source {params.source!r} cannot capture changes with deletes; use --strategy immediate")
    return live, problems


def planned_only(params: MigrateParams, report: MigrationReport, plan: list[str], problems: list[str],
                 clock: float, strategy: str) -> bool:
    """True on --dry-run, with the plan and its problems published in the report; MigrationFailed if something in
    the plan stops this live strategy; False when the run goes on."""
    if params.dry_run:
        report.notes += plan + problems
        report.seconds = time.perf_counter() - clock
        publish_report(report)
        return True
    if problems:
        raise MigrationFailed(f"{strategy} cannot keep these collections in sync: " + "; ".join(problems),
                              hint="fix the named collections or leave them out with --collections")
    return False


@dataclass
class _Run:
    """One blue-green run: what its steps share."""

    params: MigrateParams
    config: Config
    control: ControlStore
    report: MigrationReport
    live: LivePlan
    run_id: str
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def config_path(self) -> str:
        return str(self.config.path)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.live.plans]

    def timed(self, phase: str, started: float, passes: Sequence[CatchUp]) -> None:
        self.phases[phase] = {"records": sum(p.applied for p in passes), "seconds": time.perf_counter() - started,
                              "passes": len(passes)}


def blue_green(params: MigrateParams, config: Config, control: ControlStore, pointer: Pointer,
               report: MigrationReport) -> MigrationReport:
    """Copy while the source stays live (change capture), catch up, validate, freeze briefly, switch; the old
    primary stays fenced for `shiftover rollback` unless released."""
    logger = get_run_logger()
    clock = time.perf_counter()
    live, problems = plan_and_check(params, config, report)
    plan = [f"{p.name}: {p.rows:,} rows in {len(p.ranges)} chunk(s) by {p.path}, then catch-up by "
            f"{live.capture or 'nothing'}" for p in live.plans]
    if planned_only(params, report, plan, problems, clock, "blue-green"):
        return report
    run = _Run(params, config, control, report, live, begin_run(control, params, report, "start"))
    already = switched_by(control, params.target, run.run_id)
    if already is None and pointer.provider != params.source and params.switch:
        raise MigrationFailed(f"the active backend is {pointer.provider!r}, not the source {params.source!r}",
                              hint="migrate from the active backend, or pass --no-switch")
    try:
        if already is None:
            _copy_live(run)
            books = _validate_live(run)
            if params.approve_cutover and not _approved(run, books):
                return _finish(control, report, run.run_id, "rejected", run.phases, clock)
            _cut_over(run, books)
        else:
            report.notes.append(f"resumed after the pointer switch (epoch {already}); finishing the cutover")
        _after_switch(run)
        report.status = "switched" if params.switch else "validated"
        logger.info("blue-green %s → %s done", params.source, params.target)
    except BackendError as exc:
        report.status = "blocked" if isinstance(exc, CutoverBlocked) else "failed"
        report.error = str(exc)
        if switched_by(control, params.target, run.run_id) is None:
            unfreeze_source(run.config_path, params.source, run.names)
        _finish(control, report, run.run_id, "failed", run.phases, clock)
        if isinstance(exc, MigrationFailed):
            raise
        raise MigrationFailed(f"the blue-green migration stopped: {exc.headline}",
                              hint=exc.hint or "fix the cause and re-run: it resumes from its checkpoints") from None
    return _finish(control, report, run.run_id, "succeeded", run.phases, clock)


def _copy_live(run: _Run) -> None:
    """Capture on, schema, then every chunk copied while the source stays writable; keys before the catch-up."""
    params, control, names, path = run.params, run.control, run.names, run.config_path
    if any(f.run_id == run.run_id for f in control.freezes(params.source)):
        unfreeze_source(path, params.source, names)  # left by a crash inside the freeze window
        run.report.notes.append("lifted the write freeze a crashed attempt of this run left on the source")
    start_capture(path, params.source, names)
    apply_pre_data(path, run.run_id, params.source, params.target, names)
    prepare_target(path, params.target, [p.schema for p in run.live.plans])
    for p in run.live.plans:
        control.save_chunks(run.run_id, p.name, p.ranges)
        control.set_checkpoint(run.run_id, p.name, phase="copy")
    t = time.perf_counter()
    progress_id = start_progress(run.report)
    copied = run_copy(run.config, params, run.run_id, names, copy_workers(run.config, params, run.live), progress_id,
                      max(run.report.rows, 1))
    if progress_id:  # every chunk is done, whatever the writers did to the row count meanwhile
        advance_progress(progress_id, 100.0)
    apply_post_data(path, run.run_id, params.source, params.target, [KEYS])  # catch-up upserts by key
    run.phases["copy"] = {"records": copied, "seconds": time.perf_counter() - t}


def _validate_live(run: _Run) -> list[DigestBook]:
    """Catch up to max_lag, then converge the digests of both sides while writes go on; the digest books."""
    params = run.params
    t = time.perf_counter()
    run.timed("catch-up", t, catch_up_all(run.config_path, run.run_id, params.source, params.target, run.names,
                                          max_lag=params.max_lag, timeout_s=params.catchup_timeout_s))
    t = time.perf_counter()
    chunk_rows = params.chunk_rows or run.config.migration.chunk_rows
    books = build_books(run.config_path, params.source, run.live.plans, chunk_rows)
    run.timed("validate-live", t, converge_digests(run.config_path, run.run_id, params, books, run.names, {}))
    return books


def _approved(run: _Run, books: list[DigestBook]) -> bool:
    """Pause for a person's decision in the UI; False (the run ends, the pointer stays) on rejection or timeout."""
    params, report = run.params, run.report
    decision = _ask_approval(report, books, run_expectations(evidence_of(books, run.live)), params, run.run_id)
    if decision is None or not decision.approve:
        report.status = "blocked"
        report.error = (f"no approval within {params.approval_timeout_s:.0f} s" if decision is None else
                        "cutover rejected" + (f": {decision.comment}" if decision.comment else ""))
        stop_capture(run.config_path, params.source, run.names)
        return False
    report.notes.append("cutover approved" + (f": {decision.comment}" if decision.comment else ""))
    return True


def _cut_over(run: _Run, books: list[DigestBook]) -> None:
    """A last catch-up while live, then the freeze window: final delta, digests, suites, the pointer switch."""
    params, control, report = run.params, run.control, run.report
    t = time.perf_counter()  # what was written while the suites ran (or the approval waited)
    run.timed("catch-up before freeze", t, converge_digests(run.config_path, run.run_id, params, books, run.names, {}))
    control.set_summary(run.run_id, {"planned_rows": report.rows, "phase": "freeze"})
    epoch_now = control.pointer().epoch  # type: ignore[union-attr]
    cutover = cutover_window(run.config_path, run.run_id, params.source, params.target, run.names, books,
                             epoch_now, params.switch, f"migration {run.run_id} from {params.source} (blue_green)")
    run.phases["final delta (frozen)"] = {"records": cutover.final_changes, "seconds": cutover.final_seconds}
    report.freeze_ms = cutover.freeze_ms
    report.frozen_engine = cutover.frozen_engine
    if cutover.evidence:
        record_validation(report, cutover.evidence, run_expectations(cutover.evidence))
    report.notes.append(f"freeze window: {cutover.freeze_ms:,.0f} ms ({cutover.final_changes} final changes, "
                        f"{cutover.redigested_ranges} key range(s) re-digested while frozen)")
    pause_point("switched")


def _after_switch(run: _Run) -> None:
    """The old primary fenced (rollback possible, the target capturing) or released; or, with --no-switch, left."""
    params, report, path, names = run.params, run.report, run.config_path, run.names
    if not params.switch:
        stop_capture(path, params.source, names)
        report.notes.append("copied and validated; the pointer was left where it was (--no-switch)")
        return
    current = run.control.pointer()
    report.epoch_after, report.active_after = current.epoch, current.provider  # type: ignore[union-attr]
    stop_capture(path, params.source, names)
    if params.release_source:
        lift_fence(path, params.source, names)
        stop_capture(path, params.target, names)
        report.notes.append(f"{params.source} released: its write fence is lifted; no rollback possible")
    else:
        fence(path, params.source, names, run.run_id,
              f"old primary after blue-green {run.run_id}; shiftover rollback or shiftover release")
        report.notes.append(f"{params.source} stays write-fenced and {params.target} captures its changes "
                            f"for `shiftover rollback`; `shiftover release {params.source}` ends that")


def _finish(control: ControlStore, report: MigrationReport, run_id: str, status: str,
            phases: dict[str, dict[str, float]], clock: float) -> MigrationReport:
    report.seconds = time.perf_counter() - clock
    forget_dump(run_id, report.source)
    if phases:
        report.notes.append("records moved per phase: " + ", ".join(
            f"{k} {int(v['records']):,}" for k, v in phases.items()))
        # the report's phase chart: copy, catch-up, live validation, the frozen final delta (the freeze window last)
        report.phase_seconds = report.phase_seconds or {k: v["seconds"] for k, v in phases.items()}
    summary = report.model_dump(mode="json")
    summary["phases"] = phases
    control.finish_run(run_id, status=status, summary=summary)
    publish_report(report)
    create_table_artifact(key=artifact_key(report, "-phases"), table=[
        {"phase": k, "records": int(v["records"]), "seconds": round(v["seconds"], 3),
         "passes": int(v.get("passes", 1))} for k, v in phases.items()] or [{"phase": "-", "records": 0}],
        description="Records moved in each phase of the migration")
    return report


def _ask_approval(report: MigrationReport, books: list[DigestBook], summary: Any, params: MigrateParams,
                  run_id: str) -> CutoverApproval | None:
    """Pause with the validation summary until a person approves or rejects in the UI; None on timeout."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    lines = [f"# Approve the cutover {params.source} → {params.target}?", "",
             f"Run `{run_id}`. The copy is done and changes are being caught up. Approving freezes writes on "
             f"`{params.source}` briefly, applies the final delta, runs the Great Expectations suites again and "
             "switches the pointer only if they pass.", "",
             "| collection | source rows | target rows | ranges | ranges differing now |", "|---|---:|---:|---:|---:|"]
    for b in books:
        idx = list(b.source)
        lines.append(f"| {b.name} | {sum(b.source[i].count for i in idx):,} | {sum(b.target[i].count for i in idx):,}"
                     f" | {len(b.boundaries) + 1} | {len(b.differing())} |")
    live_result = ("pass" if summary.success else
                   "differences from in-flight writes: " + "; ".join(summary.failures()[:5]))
    lines += ["", f"Suites on the live data: {live_result}"]
    text = "\n".join(lines)
    create_markdown_artifact(key=artifact_key(report, "-approval"), markdown=text,
                             description="Validation summary before the cutover")
    try:
        return pause_flow_run(wait_for_input=CutoverApproval.with_initial_data(description=text, approve=False),
                              timeout=int(params.approval_timeout_s), poll_interval=2)
    except FlowPauseTimeout:
        return None
