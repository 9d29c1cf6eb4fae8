"""Flow `failover`: move the application to the best standby and fence the old primary.

plan (rank standbys: healthy, fallback order or priority, least sync lag) → fence the old primary (freeze flag; its
engine's write freeze if it answers) → lift the target's own fence if it is a former primary → copy the last delta
from the old primary if it answers → switch the pointer by compare-and-swap (two monitors racing: one switch, the
other run reports `superseded`) → event `shiftover.backend.switched` → markdown artifact with the time from the first
failed probe to the switch and the records at risk.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from contextlib import ExitStack

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from pydantic import BaseModel, Field

from adapters.config import load_config
from adapters.control import ControlStore
from adapters.errors import BackendError, LeaseHeld, PointerConflict
from adapters.leases import RunLease
from tasks.failover import (
    count_at_risk,
    fence_old_primary,
    not_in_sync,
    plan_failover,
    primary_answers,
    refuse_unsynced,
    require_healthy,
    undo_fence,
    unfence_target,
)
from tasks.migration import switch_pointer
from tasks.sync import sync_standby


class FailoverParams(BaseModel):
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    to: str | None = Field(None, description="provider to switch to; empty means the best healthy standby")
    reason: str = Field("manual failover", description="why, recorded with the switch")
    dry_run: bool = Field(False, description="say what would happen; change nothing")
    expected_epoch: int | None = Field(None, description="switch only if the pointer is still at this epoch")
    first_failed_at: dt.datetime | None = Field(None, description="first failed probe (set by the monitor)")
    force: bool = Field(False, description="switch even to a standby whose sync never completed or whose lag is "
                        "unknown (records may be lost, deleted ones may come back)")
    decided: FailoverReport | None = Field(None, description="set by the monitor: a switch it already made "
                                           "(flows/failover_now.py), recorded by this run; leave empty")


class FailoverReport(BaseModel):
    status: str  # switched, dry-run, superseded
    reason: str
    old: str
    new: str | None = None
    epoch_before: int
    epoch_after: int | None = None
    engine_fenced: bool | None = None
    unfenced_target: bool = False
    synced_rows: int | None = None
    records_at_risk: int | None = None
    at_risk_note: str = ""
    first_failed_at: dt.datetime | None = None
    switched_at: dt.datetime | None = None
    detect_to_switch_s: float | None = None
    flow_s: float = 0.0
    candidates: list[dict[str, object]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


FailoverParams.model_rebuild()


def render(r: FailoverReport) -> str:
    head = {"switched": f"**Switched** `{r.old}` → `{r.new}` (epoch {r.epoch_before} → {r.epoch_after}).",
            "dry-run": f"**Dry run.** Would switch `{r.old}` → `{r.new}` (epoch {r.epoch_before}); nothing changed.",
            "superseded": f"**Superseded.** Another switch moved the pointer first; `{r.old}` epoch {r.epoch_before} "
                          "was not touched by this run."}[r.status]
    risk = "unknown" if r.records_at_risk is None else str(r.records_at_risk)
    lines = [f"# Failover: {r.reason}", "", head, "",
             f"- time from first failed probe to switch: "
             f"{'-' if r.detect_to_switch_s is None else f'{r.detect_to_switch_s:.2f} s'}",
             f"- flow time: {r.flow_s:.2f} s",
             f"- old primary fenced in its engine: {'-' if r.engine_fenced is None else r.engine_fenced}",
             f"- last delta copied: {'-' if r.synced_rows is None else r.synced_rows} record(s)",
             f"- records at risk (on the old primary, not on the new one): {risk} {r.at_risk_note}".rstrip()]
    lines += [f"- {n}" for n in r.notes]
    if r.candidates:
        lines += ["", "| provider | rank | healthy | in sync | latency ms | lag s | error |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['provider']} | {c['rank']} | {c['healthy']} | {c.get('in_sync', '-')} | {c['latency_ms']} | "
                  f"{c['lag_s']} | {str(c['error']).replace('|', '/')} |" for c in r.candidates]
    return "\n".join(lines)


@flow(name="failover", log_prints=False, validate_parameters=True)
def failover(params: FailoverParams) -> FailoverReport:
    clock = time.perf_counter()
    if params.decided is not None:  # the monitor switched first; this run is its record
        if params.decided.status == "switched":
            _emit_switched(params.decided)
        return _publish(params.decided, None)
    config_path = str(load_config(params.config_path).path)
    plan = plan_failover(config_path, params.to)
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    report = FailoverReport(status="dry-run", reason=params.reason, old=old, new=plan.target, epoch_before=epoch,
                            first_failed_at=params.first_failed_at, candidates=[c.row() for c in plan.candidates])
    if params.expected_epoch is not None and epoch != params.expected_epoch:
        report.status, report.new = "superseded", old
        report.notes.append(f"the pointer is at epoch {epoch} on {old!r}, not at epoch {params.expected_epoch}")
        return _publish(report, clock)
    if params.dry_run:
        report.notes.append(plan.why_not or f"would fence {old!r} and switch to {plan.target!r}")
        if plan.not_in_sync:
            report.notes.append(f"not in sync: {plan.not_in_sync} (refused unless {old!r} answers for the final "
                                "delta, or --force)")
        return _publish(report, clock)
    target = require_healthy(plan)
    config = load_config(params.config_path)
    control = ControlStore(config.control.url.get_secret_value())
    lease = RunLease(config, control, [old, target], run_id=f"failover-{uuid.uuid4().hex[:10]}", kind="failover",
                     engine_locks=[], preempt=("sync",))  # no engine lock: the old primary may not answer
    with ExitStack() as stack:
        try:
            stack.enter_context(lease)
        except LeaseHeld as exc:
            if params.expected_epoch is None or getattr(exc, "holder_kind", None) != "failover":
                raise
            report.status, report.new = "superseded", None  # another monitor's failover is at work
            report.notes.append(str(exc))
            return _publish(report, clock)
        report.notes += lease.notes
        current = control.pointer()
        if current is not None and current.epoch != epoch:
            report.status, report.new = "superseded", current.provider
            report.notes.append(f"the pointer moved to epoch {current.epoch} on {current.provider!r} meanwhile")
            return _publish(report, clock)
        return _switch(params, config_path, plan, target, report, clock)


def _switch(params: FailoverParams, config_path: str, plan, target: str,  # type: ignore[no-untyped-def]
            report: FailoverReport, clock: float) -> FailoverReport:
    logger = get_run_logger()
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    problem = plan.not_in_sync
    if problem and not params.force and not primary_answers(config_path, old):
        raise refuse_unsynced(old, target, problem)  # nothing was touched yet
    reason = f"{params.reason}: {old} → {target}"
    report.engine_fenced = fence_old_primary(config_path, old, epoch + 1, f"fenced at epoch {epoch + 1} ({reason})")
    report.unfenced_target = unfence_target(config_path, target)
    if report.engine_fenced:
        try:
            report.synced_rows = sync_standby(config_path, old, target).rows
            report.records_at_risk = count_at_risk(config_path, old, target)
        except BackendError as exc:
            report.notes.append(f"the last delta could not be copied: {exc}")
    if problem:  # the final delta (a full copy for a standby never synced) may have settled it
        problem = not_in_sync(config_path, old, target)
        if problem and not params.force:
            undo_fence(config_path, old, bool(report.engine_fenced))
            if report.unfenced_target:
                fence_old_primary(config_path, target, epoch, f"fenced again: the failover to {target} was refused")
            raise refuse_unsynced(old, target, problem)
        if problem:
            report.notes.append(f"forced: {problem}")
    if report.records_at_risk is None:
        report.at_risk_note = f"({old!r} did not answer; writes after its last sync to {target!r} may be missing)"
    try:
        new_epoch, active = switch_pointer(config_path, epoch, target, reason)
    except PointerConflict as exc:
        report.status, report.new = "superseded", None
        report.notes.append(str(exc))
        return _publish(report, clock)
    report.status, report.new, report.epoch_after = "switched", active, new_epoch
    report.switched_at = dt.datetime.now(dt.timezone.utc)
    if params.first_failed_at is not None:
        report.detect_to_switch_s = (report.switched_at - params.first_failed_at).total_seconds()
    _emit_switched(report)
    logger.warning("Switched %s → %s at epoch %s (%s)", old, active, new_epoch, params.reason)
    return _publish(report, clock)


def _emit_switched(report: FailoverReport) -> None:
    emit_event(event="shiftover.backend.switched",
               resource={"prefect.resource.id": "shiftover.backend", "prefect.resource.name": "active backend"},
               related=[{"prefect.resource.id": f"shiftover.provider.{report.new}", "prefect.resource.role": "target"},
                        {"prefect.resource.id": f"shiftover.provider.{report.old}", "prefect.resource.role": "source"}],
               payload={"from": report.old, "to": report.new, "epoch": report.epoch_after,
                        "reason": f"{report.reason}: {report.old} → {report.new}",
                        "records_at_risk": report.records_at_risk})


def _publish(report: FailoverReport, clock: float | None) -> FailoverReport:
    if clock is not None:  # a recorded switch keeps the time the switch itself took
        report.flow_s = time.perf_counter() - clock
    create_markdown_artifact(key="failover", markdown=render(report),
                             description=f"failover {report.status}: {report.old} → {report.new or '-'}")
    return report
