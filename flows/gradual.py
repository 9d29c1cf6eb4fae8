"""The gradual strategy of `migrate`: checkpointed batches over any number of runs, cut over collection by collection.

Each run (a scheduled deployment can make one every few minutes) copies at most `chunks_per_run` key-range chunks,
in collection order. A collection whose chunks are all copied is caught up from the source's change capture, then
cut over on its own: a short freeze of that collection, the final delta, the GX suites on it, and a route in the
control store that sends the router's calls for it to the target. The source keeps it write-fenced from then on.
When the last collection has moved, the pointer switches by compare-and-swap and the routes are cleared. A run
killed at any point is resumed by the next one (same parameters → same run, chunks and change log kept).
"""

from __future__ import annotations

import time

from prefect import get_run_logger

from shiftover.adapters.config import Config
from shiftover.adapters.errors import BackendError, CutoverBlocked, MigrationFailed
from shiftover.adapters.postgres.schema import KEYS
from shiftover.control.store import ControlStore, Pointer
from shiftover.flows.bluegreen import (
    _finish,
    build_books,
    catch_up_all,
    converge_digests,
    copy_workers,
    plan_and_check,
    planned_only,
    run_copy,
)
from shiftover.flows.migration_run import MigrateParams, begin_run
from shiftover.tasks.capture import LivePlan, cutover_window, start_capture, stop_capture, switched_by
from shiftover.tasks.migration import CollectionPlan, prepare_target, switch_pointer
from shiftover.tasks.report_model import MigrationReport
from shiftover.tasks.reporting import start_progress
from shiftover.tasks.schema import apply_post_data, apply_pre_data


def gradual(params: MigrateParams, config: Config, control: ControlStore, pointer: Pointer,
            report: MigrationReport) -> MigrationReport:
    logger = get_run_logger()
    config_path = str(config.path)
    clock = time.perf_counter()
    chunk_rows = params.chunk_rows or config.migration.chunk_rows
    live, problems = plan_and_check(params, config, report)
    routes = control.routes()
    plan = [f"{p.name}: {p.rows:,} rows in {len(p.ranges)} chunk(s) by {p.path}"
            + (f"; already routed to {params.target}" if routes.get(p.name) == params.target else "")
            for p in live.plans]
    plan.append(f"{params.chunks_per_run or 'all'} chunk(s) per run; each collection is cut over when its chunks "
                "are copied")
    if planned_only(params, report, plan, problems, clock, "gradual"):
        return report
    names = [p.name for p in live.plans]
    run_id = begin_run(control, params, report, "gradual")
    switched = switched_by(control, params.target, run_id)
    if switched is None and pointer.provider != params.source:
        raise MigrationFailed(f"the active backend is {pointer.provider!r}, not the source {params.source!r}",
                              hint="migrate from the active backend")
    phases: dict[str, dict[str, float]] = {}
    try:
        todo = [n for n in names if routes.get(n) != params.target] if switched is None else []
        if todo:
            _prepare(config_path, run_id, params, live, todo, control)
        progress_id = start_progress(report) if todo else None
        workers = copy_workers(config, params, live)
        budget = params.chunks_per_run
        for name in todo:
            budget, copied_all = _copy_some(config, run_id, params, name, workers, progress_id, budget, phases,
                                            control, report)
            if not copied_all:
                break
            _route(config_path, run_id, params, [p for p in live.plans if p.name == name], chunk_rows,
                   pointer.epoch, phases, control, report)
        routes = control.routes()
        left = [n for n in names if routes.get(n) != params.target] if switched is None else []
        if left:
            report.status = "in-progress"
            report.notes.append(f"still on {params.source}: {', '.join(left)}; the next run continues")
            return _finish(control, report, run_id, "running", phases, clock)
        if switched is None and params.switch:
            epoch, active = switch_pointer(config_path, pointer.epoch, params.target,
                                           f"migration {run_id} from {params.source} (gradual, last collection)")
            report.epoch_after, report.active_after = epoch, active
            for name in names:  # the pointer now says what the routes said
                control.clear_route(name)
        report.status = "validated" if switched is None and not params.switch else "switched"
        logger.info("gradual %s → %s: every collection moved", params.source, params.target)
    except BackendError as exc:
        report.status = "blocked" if isinstance(exc, CutoverBlocked) else "failed"
        report.error = str(exc)
        _finish(control, report, run_id, "failed", phases, clock)
        if isinstance(exc, MigrationFailed):
            raise
        raise MigrationFailed(f"the gradual migration stopped: {exc.headline}",
                              hint=exc.hint or "fix the cause and re-run: it resumes from its checkpoints") from None
    return _finish(control, report, run_id, "succeeded", phases, clock)


def _prepare(config_path: str, run_id: str, params: MigrateParams, live: LivePlan, todo: list[str],
             control: ControlStore) -> None:
    """Capture on the collections still to move; the schema, and every table's key before any copy (a run reads the
    keys of collections it moves later); the chunks planned once."""
    names = [p.name for p in live.plans]
    start_capture(config_path, params.source, todo)
    apply_pre_data(config_path, run_id, params.source, params.target, names)
    apply_post_data(config_path, run_id, params.source, params.target, [KEYS])
    prepare_target(config_path, params.target, [p.schema for p in live.plans if p.name in todo])
    for p in live.plans:
        control.save_chunks(run_id, p.name, p.ranges)


def _copy_some(config: Config, run_id: str, params: MigrateParams, name: str, workers: int, progress_id: str | None,
               budget: int | None, phases: dict[str, dict[str, float]], control: ControlStore,
               report: MigrationReport) -> tuple[int | None, bool]:
    """Copy the collection's chunks not yet done, within this run's chunk budget; (the budget left, every chunk of the
    collection is copied)."""
    remaining = [c for c in control.chunks(run_id, name) if not c.done]
    if not remaining:
        return budget, True
    if budget == 0:
        return budget, False
    t = time.perf_counter()
    copied = run_copy(config, params, run_id, [name], workers, progress_id, max(report.rows, 1), limit=budget)
    _add(phases, "copy", copied, time.perf_counter() - t)
    if budget is not None:
        budget -= min(budget, len(remaining))
    return budget, not any(not c.done for c in control.chunks(run_id, name))


def _route(config_path: str, run_id: str, params: MigrateParams, plans: list[CollectionPlan], chunk_rows: int,
           epoch: int, phases: dict[str, dict[str, float]], control: ControlStore, report: MigrationReport) -> None:
    """Catch one copied collection up, then freeze it briefly and route it to the target."""
    name = plans[0].name
    t = time.perf_counter()
    passes = catch_up_all(config_path, run_id, params.source, params.target, [name],
                          max_lag=params.max_lag, timeout_s=params.catchup_timeout_s)
    books = build_books(config_path, params.source, plans, chunk_rows)
    passes += converge_digests(config_path, run_id, params, books, [name], {})
    _add(phases, "catch-up", sum(p.applied for p in passes), time.perf_counter() - t)
    cut = cutover_window(config_path, run_id, params.source, params.target, [name], books, epoch,
                         False, f"gradual {run_id}: {name}", route=True)
    _add(phases, "final delta (frozen)", cut.final_changes, cut.final_seconds)
    if cut.waiting:
        report.notes.append(f"{name}: {', '.join(cut.waiting)} wait(s) for a table still to move")
    stop_capture(config_path, params.source, [name])
    control.set_checkpoint(run_id, name, phase="routed")
    report.freeze_ms = max(report.freeze_ms or 0.0, cut.freeze_ms)
    report.notes.append(f"{name} moved to {params.target} (freeze {cut.freeze_ms:,.0f} ms); the router sends "
                        f"it there and {params.source} keeps it write-fenced")


def _add(phases: dict[str, dict[str, float]], name: str, records: int, seconds: float) -> None:
    entry = phases.setdefault(name, {"records": 0, "seconds": 0.0, "passes": 0})
    entry["records"] += records
    entry["seconds"] += seconds
    entry["passes"] += 1
