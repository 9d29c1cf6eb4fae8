"""The monitor's failover: fence and switch first, bookkeeping after.

`switch_now` takes the failover flow's steps in the same order (rank the standbys, fence the old primary, lift the
target's own fence, copy the last delta if the old primary answers, move the pointer by compare-and-swap), calling
the tasks' plain functions in this thread: no flow run, task run, API call or event is on the path to the switch, so
neither a busy machine nor a slow Prefect API delays it. `fail_over_first` then records the finished switch as a
`failover` flow run in a background thread (the same artifact: decision and switch times, records at risk; the
`shiftover.backend.switched` event), so the run in the UI still tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from adapters.errors import BackendError, PointerConflict
from flows.failover import FailoverParams, FailoverReport
from tasks.failover import count_at_risk, fence_old_primary, plan_failover, require_healthy, unfence_target
from tasks.migration import switch_pointer
from tasks.sync import sync_standby

log = logging.getLogger("shiftover.serve")


def switch_now(params: FailoverParams) -> FailoverReport:
    """The failover, done now in plain Python; raises HealthCheckFailed when no standby is healthy."""
    clock = time.perf_counter()
    plan = plan_failover.fn(params.config_path, params.to)
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    report = FailoverReport(status="dry-run", reason=params.reason, old=old, new=plan.target, epoch_before=epoch,
                            first_failed_at=params.first_failed_at, candidates=[c.row() for c in plan.candidates])
    if params.expected_epoch is not None and epoch != params.expected_epoch:
        report.status, report.new = "superseded", old
        report.notes.append(f"the pointer is at epoch {epoch} on {old!r}, not at epoch {params.expected_epoch}")
        report.flow_s = time.perf_counter() - clock
        return report
    target = require_healthy(plan)
    reason = f"{params.reason}: {old} → {target}"
    report.engine_fenced = fence_old_primary.fn(params.config_path, old, epoch + 1,
                                                f"fenced at epoch {epoch + 1} ({reason})")
    report.unfenced_target = unfence_target.fn(params.config_path, target)
    if report.engine_fenced:
        try:
            report.synced_rows = sync_standby.fn(params.config_path, old, target).rows
            report.records_at_risk = count_at_risk.fn(params.config_path, old, target)
        except BackendError as exc:
            report.notes.append(f"the last delta could not be copied: {exc}")
    if report.records_at_risk is None:
        report.at_risk_note = f"({old!r} did not answer; writes after its last sync to {target!r} may be missing)"
    try:
        new_epoch, active = switch_pointer.fn(params.config_path, epoch, target, reason)
    except PointerConflict as exc:
        report.status, report.new = "superseded", None
        report.notes.append(str(exc))
        report.flow_s = time.perf_counter() - clock
        return report
    report.status, report.new, report.epoch_after = "switched", active, new_epoch
    report.switched_at = dt.datetime.now(dt.timezone.utc)
    if params.first_failed_at is not None:
        report.detect_to_switch_s = (report.switched_at - params.first_failed_at).total_seconds()
    report.flow_s = time.perf_counter() - clock
    report.notes.append(f"switched by the monitor in {report.flow_s:.2f} s before this run was recorded")
    return report


def record(params: FailoverParams, report: FailoverReport) -> None:
    """The `failover` flow run for a switch already made: artifact and event. Errors are logged, never raised: the
    switch stands whether or not Prefect can record it."""
    from flows.failover import failover

    try:
        failover(params.model_copy(update={"decided": report}))
    except Exception:  # noqa: BLE001 - bookkeeping must not take the monitor down; the switch is in the control store
        log.exception("the failover to %s is done but could not be recorded as a flow run", report.new)


def fail_over_first(**values: object) -> FailoverReport:
    """The monitor's `run_failover`: switch now, record in the background; returns the report at once."""
    params = FailoverParams(**values)  # type: ignore[arg-type]
    report = switch_now(params)
    log.warning("failover %s: %s → %s (epoch %s → %s) in %.2f s", report.status, report.old, report.new or "-",
                report.epoch_before, report.epoch_after or "-", report.flow_s)
    threading.Thread(target=record, args=(params, report), name="shiftover-failover-record", daemon=True).start()
    return report
