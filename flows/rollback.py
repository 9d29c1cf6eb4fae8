"""Flows `rollback` and `release`: the two ways a blue-green cutover ends.

rollback: freeze green → copy to blue what was written to green since the cutover (green's change capture; a full
key-range copy where green has none), through blue's own write fence → GX suites green vs blue → move the pointer
back by compare-and-swap → lift blue's fence. Green stays write-fenced until it is released, as blue was.

release: the old primary is let go: its write fence is lifted and change capture stops on both sides, so no
rollback is possible afterwards.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from shiftover.adapters.base import ranges_from_boundaries
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, CutoverBlocked, MigrationFailed
from shiftover.control.leases import RunLease
from shiftover.control.store import ControlStore, Run
from shiftover.control.syncstate import SyncStates
from shiftover.tasks.capture import (
    capturing,
    catch_up,
    copy_back,
    digest_boundaries,
    fence,
    fenced_or_captured,
    lift_fence,
    stop_capture,
)
from shiftover.tasks.migration import measure_collection, run_expectations, switch_pointer
from shiftover.tasks.report_model import CollectionReport, MigrationReport
from shiftover.tasks.reporting import publish_report


class RollbackParams(BaseModel):
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    run_id: str | None = Field(None, description="the blue-green run to undo (default: the last one that switched)")
    batch_size: int = Field(5000, ge=1, description="records per batch when green has no change capture")
    chunk_rows: int = Field(50_000, ge=1, description="records per compared key range")


class ReleaseParams(BaseModel):
    provider: str = Field(description="the old primary to let go (blue after a cutover, green after a rollback)")
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")


def _last_switch(control: ControlStore, run_id: str | None) -> Run:
    for run in control.runs(limit=200):
        if run.strategy == "blue_green" and run.status == "succeeded" and (run_id is None or run.run_id == run_id):
            return run
    raise MigrationFailed(f"no finished blue-green run {run_id or ''} to roll back".replace("  ", " "),
                          hint="shiftover status lists the runs; pass --run-id")


@flow(name="rollback", log_prints=False, validate_parameters=True)
def rollback(params: RollbackParams) -> MigrationReport:
    config = load_config(params.config_path)
    control = ControlStore(config.control.url.get_secret_value())
    run = _last_switch(control, params.run_id)
    blue, green = run.source or "", run.target or ""
    with RunLease(config, control, [blue, green], run_id=run.run_id, kind="rollback"):
        # the rollback consumes green's capture and rewrites blue: standbys synced from either are copied again
        SyncStates(control).invalidate(source=green, why=f"rollback of {run.run_id} consumed the change capture")
        SyncStates(control).invalidate(target=blue, why=f"rollback of {run.run_id} wrote into it")
        return _rollback(params, config, control, run)


def _rollback(params: RollbackParams, config: Config, control: ControlStore, run: Run) -> MigrationReport:
    logger = get_run_logger()
    config_path = str(config.path)
    blue, green = run.source or "", run.target or ""
    names = [c["name"] for c in run.summary.get("collections", [])]
    pointer = control.ensure_pointer(config.primary())
    report = MigrationReport(run_id=run.run_id, source=green, target=blue, strategy="rollback", status="failed",
                             started=dt.datetime.now(dt.timezone.utc), epoch_before=pointer.epoch,
                             active_after=pointer.provider)
    clock = time.perf_counter()
    try:
        if pointer.provider != green:
            raise MigrationFailed(f"the active backend is {pointer.provider!r}, not {green!r} (the green of run "
                                  f"{run.run_id})", hint="a rollback moves the pointer back from green only")
        t0 = time.perf_counter()
        report.frozen_engine = fence(config_path, green, names, run.run_id, f"rollback of {run.run_id} to {blue}")
        moved = _copy_back(params, config_path, run, names, report)
        evidence = [measure_collection(config_path, green, blue, name, ranges_from_boundaries(
            digest_boundaries(config_path, green, name, params.chunk_rows))) for name in names]
        result = run_expectations(evidence)
        report.collections = [CollectionReport(name=e.collection, source_rows=e.source_rows,
                                               target_rows=e.target_rows, chunks=len(e.source_digests),
                                               digests_equal=[(d.count, d.digest) for d in e.source_digests]
                                               == [(d.count, d.digest) for d in e.target_digests],
                                               digest_method=e.digest_method) for e in evidence]
        if not result.success:
            raise CutoverBlocked("blue does not hold green's records after the copy back: "
                                 + "; ".join(result.failures()[:10]), failures=result.failures(),
                                 hint="the pointer stays on green; re-run the rollback")
        epoch, active = switch_pointer(config_path, pointer.epoch, blue, f"rollback of {run.run_id} to {blue}")
        lift_fence(config_path, blue, names)
        stop_capture(config_path, green, names)
        report.freeze_ms = (time.perf_counter() - t0) * 1000
        report.epoch_after, report.active_after, report.status = epoch, active, "switched"
        report.notes += [f"{moved:,} change(s) written on {green} since the cutover were copied back to {blue}",
                         f"{green} stays write-fenced; `shiftover release {green}` lifts that"]
        control.finish_run(run.run_id, status="rolled-back", summary=run.summary)
        logger.info("Rolled back to %s at epoch %s", active, epoch)
    except BackendError as exc:
        report.error = str(exc)
        report.status = "blocked" if isinstance(exc, CutoverBlocked) else "failed"
        if control.pointer().provider == green:  # type: ignore[union-attr]
            lift_fence(config_path, green, names)
        if isinstance(exc, MigrationFailed):
            raise
        raise MigrationFailed(f"the rollback stopped: {exc.headline}",
                              hint=exc.hint or "fix the cause and re-run") from None
    finally:
        report.seconds = time.perf_counter() - clock
        publish_report(report)
    return report


def _copy_back(params: RollbackParams, config_path: str, run: Run, names: list[str], report: MigrationReport) -> int:
    """Green's writes since the cutover back to blue: the captured changes, or every record where green captured
    nothing. Returns the records written."""
    blue, green = run.source or "", run.target or ""
    captured = set(capturing(config_path, green))
    moved = 0
    for name in names:
        if name in captured:
            moved += catch_up(config_path, run.run_id, green, blue, name, bypass_target=True,
                              phase="rollback").applied
            continue
        for rng in ranges_from_boundaries(digest_boundaries(config_path, green, name, params.chunk_rows)):
            moved += copy_back(config_path, green, blue, name, rng, params.batch_size)
        report.notes.append(f"{name}: {green} had no change capture, so every record was copied back")
    return moved


@flow(name="release", log_prints=False, validate_parameters=True)
def release(params: ReleaseParams) -> list[str]:
    """Lift the old primary's write fence and stop change capture on both sides; returns the collections released."""
    config = load_config(params.config_path)
    config_path = str(config.path)
    control = ControlStore(config.control.url.get_secret_value())
    pointer = control.ensure_pointer(config.primary())
    if pointer.provider == params.provider:
        raise MigrationFailed(f"{params.provider!r} is the active backend; release names the old primary",
                              hint="shiftover status shows which provider is active")
    with RunLease(config, control, [params.provider, pointer.provider], run_id=f"release-{uuid.uuid4().hex[:10]}",
                  kind="release"):
        names = sorted({f.collection for f in control.freezes(params.provider)}
                       | set(fenced_or_captured(config_path, params.provider)))
        lift_fence(config_path, params.provider, names)
        stop_capture(config_path, params.provider, names)
        # the active provider's capture now serves its standbys' sync only (kept for the collections they sync)
        synced = {s.collection for s in SyncStates(control).get(source=pointer.provider) if s.state == "live"}
        stop_capture(config_path, pointer.provider, [n for n in names if n not in synced])
    get_run_logger().info("Released %s: %s", params.provider, ", ".join(names) or "nothing was fenced")
    return names
