"""Strategy `immediate`: freeze writes on the source → create the target's schema → copy key-range chunks (retryable
tasks, each digesting its frozen source range) → keys and sequences → measure the target → Great Expectations suites
→ switch the pointer by compare-and-swap → lift the freeze. Whatever fails, the freeze is lifted, the pointer stays,
the source is untouched, and a re-run resumes from the chunks already copied.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, CutoverBlocked, MigrationFailed
from shiftover.adapters.postgres.schema import ENFORCEMENT, KEYS
from shiftover.control.store import ControlStore, Pointer
from shiftover.expectations.suites import CollectionEvidence, ValidationResult
from shiftover.flows.estimates import estimate, freeze_warning
from shiftover.flows.migration_run import MigrateParams, begin_run, record_validation, resolve_run_id
from shiftover.tasks.batches import Measurement, bundled, copy_chunks, in_bundles, measure_collections, small
from shiftover.tasks.digests import BATCHED, SourceDigests
from shiftover.tasks.migration import (
    ChunkPlan,
    ChunkResult,
    CollectionPlan,
    copy_chunk,
    finish_target,
    freeze_source,
    measure_collection,
    plan_collections,
    prepare_target,
    run_expectations,
    switch_pointer,
    unfreeze_source,
)
from shiftover.tasks.report_model import CollectionReport, MigrationReport
from shiftover.tasks.reporting import ProgressFeed, completed, publish_report, start_progress
from shiftover.tasks.schema import (
    apply_post_data,
    apply_pre_data,
    describe_schemas,
    forget_dump,
    plan_schema,
    sync_sequences,
    with_objects,
)


def immediate(params: MigrateParams, config: Config, control: ControlStore, pointer: Pointer,
              report: MigrationReport) -> MigrationReport:
    """Plan (and stop there on --dry-run), then run the steps above; the report says how it ended."""
    config_path = str(config.path)
    batch_size = params.batch_size or config.migration.batch_size
    chunk_rows = params.chunk_rows or config.migration.chunk_rows
    clock = time.perf_counter()
    run = _RunState()
    try:
        plans = plan_collections(config_path, params.source, params.target, params.collections, chunk_rows)
        report.phase_seconds["plan"] = time.perf_counter() - clock
        report.collections = [CollectionReport(name=p.name, source_rows=p.rows, chunks=len(p.ranges), path=p.path)
                              for p in plans]
        report.estimated_seconds, basis = estimate(control, config, params.source, params.target, plans)
        report.notes.append(basis)
        report.notes += [n for p in plans for n in p.notes]  # fields dropped, RLS policies missing
        run_id = run.dump_id = None if params.dry_run else resolve_run_id(control, params)  # a resumed run's schema
        schema = plan_schema(config_path, run_id, params.source, params.target, [p.name for p in plans])
        report.notes += list(schema.notes)
        if params.dry_run:
            if params.switch and pointer.provider != params.source:
                report.notes.append(f"the active backend is {pointer.provider!r}, not the source {params.source!r}")
            report.notes += [f"{p.name}: {p.rows:,} rows in {len(p.ranges)} chunk(s) by {p.path}; target table "
                             f"{'exists' if p.target_exists else 'will be created'}" for p in plans]
            report.notes += [f"mapping {line}" for p in plans for line in p.mapping]  # adapters/mapping.py
            report.notes += _empty_source_warnings(params, plans)
            late = freeze_warning(params.source, report.estimated_seconds, config.migration.max_freeze_s, expected=True)
            report.notes += [late] if late else []
            return report
        if not plans:
            raise MigrationFailed(f"{params.source!r} has no collections to migrate",
                                  hint="check the source's url, or name the collections with --collections")
        if params.switch and pointer.provider != params.source:
            raise MigrationFailed(
                f"the active backend is {pointer.provider!r} (epoch {pointer.epoch}), not the source "
                f"{params.source!r}",
                hint="migrate from the active backend, or pass --no-switch to copy without cutting over")
        run.run_id = begin_run(control, params.model_copy(update={"run_id": run_id}), report)
        _run(control, config_path, params, run, plans, pointer.epoch, batch_size, report)
    except BackendError as exc:
        report.status = "blocked" if isinstance(exc, CutoverBlocked) else "failed"
        report.error = str(exc)
        if isinstance(exc, MigrationFailed):
            raise
        raise MigrationFailed(f"the migration stopped: {exc.headline}", hint=exc.hint or "fix the cause and re-run: "
                              "the run resumes from its checkpoints") from None
    finally:
        if run.frozen:
            unfreeze_source(config_path, params.source, run.frozen, run.run_id)
            report.freeze_ms = (time.perf_counter() - run.frozen_at) * 1000
            late = freeze_warning(params.source, report.freeze_ms / 1000, config.migration.max_freeze_s, expected=False)
            report.notes += [late] if late else []
        report.seconds = time.perf_counter() - clock
        forget_dump(run.dump_id, params.source)
        if run.run_id:
            succeeded = report.status in ("switched", "validated")
            control.finish_run(run.run_id, status="succeeded" if succeeded else "failed",
                               summary=report.model_dump(mode="json"))
        publish_report(report)
    return report





@dataclass
class _RunState:
    """What the flow must undo or close whatever happens: the run it started and the freeze it holds."""

    run_id: str | None = None
    frozen: list[str] = field(default_factory=list)
    frozen_at: float = 0.0
    dump_id: str | None = None  # the run whose schema dump (a temporary file) is removed at the end


class _Lap:
    """Records the seconds since the previous lap under a phase name in the report."""

    def __init__(self, report: MigrationReport, start: float) -> None:
        self.report, self.last = report, start

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.report.phase_seconds[phase] = now - self.last
        self.last = now


def _empty_source_warnings(params: MigrateParams, plans: list[CollectionPlan]) -> list[str]:
    """What a dry run says when the source holds nothing to move (the run itself stops on no collections)."""
    if not plans:
        return [f"warning: {params.source!r} has no collections: the run would stop here (check the source's url, "
                "or name the collections with --collections)"]
    empty = [p.name for p in plans if p.rows == 0]
    if empty and len(empty) == len(plans):
        return [f"warning: every collection on {params.source!r} is empty: the run would copy no rows "
                "(is this the right source?)"]
    return [f"warning: empty on {params.source!r}: {', '.join(empty)}"] if empty else []


def _run(control: ControlStore, config_path: str, params: MigrateParams, run: _RunState,
               plans: list[CollectionPlan], epoch: int, batch_size: int, report: MigrationReport) -> None:
    """Freeze → create → copy → measure → expectations → switch. The caller lifts the freeze."""
    logger = get_run_logger()
    assert run.run_id is not None
    run.frozen, run.frozen_at = [p.name for p in plans], time.perf_counter()
    lap = _Lap(report, run.frozen_at)
    report.frozen_engine = freeze_source(config_path, params.source, run.frozen, run.run_id,
                                         f"migration {run.run_id} to {params.target}")
    lap("freeze")
    created = apply_pre_data(config_path, run.run_id, params.source, params.target, run.frozen)
    bulk = [p.name for p in plans if p.path != BATCHED]
    prepare_target(config_path, params.target, [p.schema for p in plans], bulk)
    lap("schema")
    workers = params.workers or load_config(config_path).migration.workers
    # A resumed run copies and measures the chunks it planned first, whatever key boundaries were planned now.
    plans = [replace(p, ranges=tuple(c.range for c in control.save_chunks(run.run_id, p.name, p.ranges)))
             for p in plans]
    # The source is frozen from here on: each chunk digests its source range as it copies it.
    early = _copy_all(control, config_path, params, run.run_id, plans, batch_size, workers, report)
    lap("copy")
    if bulk:
        marked = [n for n in bulk if n not in created]  # the schema move builds the keys of the tables it created
        if marked:
            finish_target(config_path, params.target, marked)
        apply_post_data(config_path, run.run_id, params.source, params.target, [KEYS, ENFORCEMENT])
        sync_sequences(config_path, params.source, params.target, run.frozen)
        lap("index")
    result = validate_target(control, config_path, params, run.run_id, plans, report, early)
    lap("validate")
    if not result.success:
        raise CutoverBlocked(
            "the target does not hold the same records: " + "; ".join(result.failures()[:10]),
            failures=result.failures(),
            hint="the pointer did not move; inspect what is listed (differing key ranges are re-copied by a re-run; "
                 "schema objects are compared as `collection object: source definition target definition`)")
    if params.switch:
        new_epoch, active = switch_pointer(config_path, epoch, params.target,
                                           f"migration {run.run_id} from {params.source} ({params.strategy})")
        report.epoch_after, report.active_after, report.status = new_epoch, active, "switched"
        lap("switch")
        logger.info("Cut over to %s at epoch %s", active, new_epoch)
    else:
        report.status = "validated"
        report.notes.append("copied and validated; the pointer was left where it was (--no-switch)")


def validate_target(control: ControlStore, config_path: str, params: MigrateParams, run_id: str,
                    plans: list[CollectionPlan], report: MigrationReport,
                    source_digests: list[SourceDigests | None] | None = None) -> ValidationResult:
    """Measure both sides, run the GX suites, record the outcome; chunks that differ are marked to be re-copied.
    `source_digests` (one per plan, made by the chunks that copied the frozen source) spare a second read of it."""
    control.set_summary(run_id, {"planned_rows": report.rows, "phase": "validate"})  # the CLI shows a spinner
    early: list[SourceDigests | None] = list(source_digests) if source_digests else [None] * len(plans)
    pairs = list(zip(plans, early, strict=True))
    futures = {p.name: measure_collection.submit(config_path, params.source, params.target, p.name, list(p.ranges),
                                                 p.excluded, s) for p, s in pairs if not small(p)}
    few = [Measurement(p.name, p.ranges, p.excluded, s) for p, s in pairs if small(p)]
    bundles = [measure_collections.submit(config_path, params.source, params.target, b) for b in in_bundles(few)]
    objects = describe_schemas.submit(config_path, params.source, params.target, [p.name for p in plans])
    found = {e.collection: e for b in bundles for e in b.result()} | {n: f.result() for n, f in futures.items()}
    measured: list[CollectionEvidence] = with_objects([found[p.name] for p in plans], objects.result())
    result = run_expectations(measured)
    record_validation(report, measured, result)
    for coll, labels in result.mismatched_ranges().items():
        for chunk in control.chunks(run_id, coll):
            if chunk.range.label() in labels:
                control.chunk_undone(run_id, coll, chunk.idx)
    return result


def _copy_all(control: ControlStore, config_path: str, params: MigrateParams, run_id: str,
              plans: list[CollectionPlan], batch_size: int, workers: int,
              report: MigrationReport) -> list[SourceDigests | None]:
    """Submit every chunk not yet done, at most `workers` at a time, updating the progress artifact. Returns, per
    plan, the source digests the chunks made on the way: None where some chunk was copied by an earlier attempt (or
    could not digest on the way), and validation reads the source itself."""
    total = max(report.rows, 1)
    progress_id = start_progress(report)
    todo: list[ChunkPlan] = []
    for p in plans:
        for chunk in control.save_chunks(run_id, p.name, p.ranges):
            if not chunk.done:
                todo.append(ChunkPlan(config_path, run_id, params.source, params.target, p.name, chunk.idx,
                                      chunk.range, batch_size, digest=True, excluded=p.excluded))
    if not _concurrent_target(config_path, params.target):  # one writer at a time (SQLite)
        workers = 1
    seconds: dict[str, float] = {}
    digests: dict[tuple[str, int], ChunkResult] = {}

    few = {p.name for p in plans if small(p)}
    queue = iter(bundled(todo, few))  # a sliding window: each finished item makes room for the next
    pending: list[PrefectFuture] = [_submit(item) for item in itertools.islice(queue, workers)]
    feed = ProgressFeed(progress_id, control, run_id, total)
    for finished in completed(pending, feed):
        done = finished.result()  # a failed chunk stops the run here, before another one starts
        following = next(queue, None)
        if following is not None:
            pending.append(_submit(following))
        for res in done if isinstance(done, list) else [done]:
            seconds[res.collection] = seconds.get(res.collection, 0.0) + res.seconds
            digests[(res.collection, res.idx)] = res
    feed.tick(force=True)
    for c in report.collections:
        c.seconds = seconds.get(c.name, 0.0)
    out: list[SourceDigests | None] = []
    for p in plans:
        made = [digests.get((p.name, i)) for i in range(len(p.ranges))]
        found = [(m.digest_method, m.source_digest) for m in made
                 if m is not None and m.digest_method is not None and m.source_digest is not None]
        methods = {method for method, _ in found}
        complete = len(found) == len(made) and len(methods) == 1
        out.append(SourceDigests(methods.pop(), [d for _, d in found]) if complete else None)
    return out


def _submit(item: ChunkPlan | list[ChunkPlan]) -> PrefectFuture:
    return copy_chunks.submit(item) if isinstance(item, list) else copy_chunk.submit(item)


def _concurrent_target(config_path: str, target: str) -> bool:
    from shiftover.adapters.registry import adapter_class, provider_config

    config = load_config(config_path)
    return adapter_class(provider_config(config, target).kind).offers.concurrent_writes
