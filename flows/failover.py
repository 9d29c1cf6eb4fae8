"""Flow `failover`: move the application to the best standby and fence the old primary.

`fail_over` is the one place the steps and their order are written: plan (rank standbys: healthy, in sync, fallback
order or priority, least sync lag) → fence the old primary (freeze flag; its engine's write freeze if it answers) →
lift the target's own fence if it is a former primary → copy the last delta from the old primary if it answers →
switch the pointer by compare-and-swap (two monitors racing: one switch, the other run reports `superseded`). It runs
the `Steps` it is given: Prefect tasks inside the `failover` flow run (`shiftover failover`, the UI), or the same
functions plain in the monitor's thread (`fail_over_first`), which switches first and then records the switch as a
`failover` flow run. Both end in the event `shiftover.backend.switched` and a markdown artifact with the time from
the first failed probe to the switch and the records at risk.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, fields
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from pydantic import BaseModel, Field

from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, LeaseHeld, PointerConflict
from shiftover.control.leases import RunLease
from shiftover.control.store import ControlStore
from shiftover.tasks.failover import (
    FailoverPlan,
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
from shiftover.tasks.migration import switch_pointer
from shiftover.tasks.sync import sync_standby
from shiftover.tasks.sync_result import SyncResult

log = logging.getLogger("shiftover.serve")


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
                                           "(fail_over_first), recorded by this run; leave empty")


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
    step_s: dict[str, float] = Field(default_factory=dict)  # seconds each step took (a repeated step: the sum)
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
             f"- flow time: {r.flow_s:.2f} s" + (" (" + ", ".join(f"{k.replace('_', ' ')} {v:.2f} s"
                                                                    for k, v in r.step_s.items()) + ")"
                                                  if r.step_s else ""),
             f"- old primary fenced in its engine: {_word(r.engine_fenced)}",
             f"- last delta copied: {'-' if r.synced_rows is None else r.synced_rows} record(s)",
             f"- records at risk (on the old primary, not on the new one): {risk} {r.at_risk_note}".rstrip()]
    lines += [f"- {n}" for n in r.notes]
    if r.candidates:
        lines += ["", "| provider | rank | healthy | in sync | latency ms | lag s | error |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['provider']} | {c['rank']} | {_word(c['healthy'])} | {_word(c.get('in_sync'))} | "
                  f"{c['latency_ms']} | {c['lag_s']} | {str(c['error'] or '-').replace('|', '/')} |"
                  for c in r.candidates]
    return "\n".join(lines)


def _word(value: object) -> str:
    """Booleans as words in a report: yes, no, or - when not known."""
    return "-" if value is None else ("yes" if value is True else "no" if value is False else str(value))


@dataclass(frozen=True)
class Steps:
    """The failover's I/O steps. In the `failover` flow run they are Prefect tasks (each a task run in the UI, with
    its retries); in the monitor's thread (`fail_over_first`) the same functions run plain, with no API call."""

    plan: Callable[..., FailoverPlan]
    primary_answers: Callable[..., bool]
    not_in_sync: Callable[..., str | None]
    fence: Callable[..., bool]
    unfence_target: Callable[..., bool]
    sync_delta: Callable[..., SyncResult]
    count_at_risk: Callable[..., int]
    undo_fence: Callable[..., None]
    switch: Callable[..., tuple[int, str]]

    def plain(self) -> Steps:
        plain: dict[str, Any] = {f.name: getattr(self, f.name).fn for f in fields(self)}
        return Steps(**plain)

    def timed(self, into: dict[str, float]) -> Steps:
        """The same steps, each adding the seconds it took to `into` under its name (where the failover's time goes)."""
        def timing(name: str, step: Callable[..., object]) -> Callable[..., object]:
            def run(*args: object, **kwargs: object) -> object:
                started = time.perf_counter()
                try:
                    return step(*args, **kwargs)
                finally:
                    into[name] = round(into.get(name, 0.0) + time.perf_counter() - started, 4)
            return run

        timed: dict[str, Any] = {f.name: timing(f.name, getattr(self, f.name)) for f in fields(self)}
        return Steps(**timed)


TASKS = Steps(plan=plan_failover, primary_answers=primary_answers, not_in_sync=not_in_sync, fence=fence_old_primary,
              unfence_target=unfence_target, sync_delta=sync_standby, count_at_risk=count_at_risk,
              undo_fence=undo_fence, switch=switch_pointer)


def fail_over(params: FailoverParams, steps: Steps) -> FailoverReport:
    """Decide, fence, switch: the one place the failover's order is written. Returns the report (switched, dry-run
    or superseded) with `flow_s` the time these steps took; raises HealthCheckFailed (no healthy standby) or
    StandbyNotInSync (BACKEND_017) before anything was changed."""
    clock, step_s = time.perf_counter(), dict[str, float]()
    steps = steps.timed(step_s)
    config = load_config(params.config_path)
    config_path = str(config.path)
    plan = steps.plan(config_path, params.to)
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    report = FailoverReport(status="dry-run", reason=params.reason, old=old, new=plan.target, epoch_before=epoch,
                            first_failed_at=params.first_failed_at, candidates=[c.row() for c in plan.candidates])
    report.step_s = step_s  # the same dict: the steps still to run add to it
    if params.expected_epoch is not None and epoch != params.expected_epoch:
        report.status, report.new = "superseded", old
        report.notes.append(f"the pointer is at epoch {epoch} on {old!r}, not at epoch {params.expected_epoch}")
    elif params.dry_run:
        report.notes.append(plan.why_not or f"would fence {old!r} and switch to {plan.target!r}")
        if plan.not_in_sync:
            report.notes.append(f"not in sync: {plan.not_in_sync} (refused unless {old!r} answers for the final "
                                "delta, or --force)")
    else:
        _leased_switch(params, config, plan, require_healthy(plan), report, steps)
    report.flow_s = time.perf_counter() - clock
    return report


def _leased_switch(params: FailoverParams, config: Config, plan: FailoverPlan, target: str, report: FailoverReport,
                   steps: Steps) -> None:
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    control = ControlStore(config.control.url.get_secret_value())
    lease = RunLease(config, control, [old, target], run_id=f"failover-{uuid.uuid4().hex[:10]}", kind="failover",
                     engine_locks=[], preempt=("sync",))  # no engine lock: the old primary may not answer
    with ExitStack() as stack:
        stack.callback(control.close)
        started = time.perf_counter()
        try:
            stack.enter_context(lease)
        except LeaseHeld as exc:
            if params.expected_epoch is None or getattr(exc, "holder_kind", None) != "failover":
                raise
            report.status, report.new = "superseded", None  # another monitor's failover is at work
            report.notes.append(str(exc))
            return
        report.notes += lease.notes
        current = control.pointer()
        report.step_s["lease"] = round(time.perf_counter() - started, 4)
        if current is not None and current.epoch != epoch:
            report.status, report.new = "superseded", current.provider
            report.notes.append(f"the pointer moved to epoch {current.epoch} on {current.provider!r} meanwhile")
            return
        _switch(params, str(config.path), plan, target, report, steps)


def _switch(params: FailoverParams, config_path: str, plan: FailoverPlan, target: str, report: FailoverReport,
            steps: Steps) -> None:
    old, epoch = plan.pointer.provider, plan.pointer.epoch
    problem = plan.not_in_sync
    if problem and not params.force and not steps.primary_answers(config_path, old):
        raise refuse_unsynced(old, target, problem)  # nothing was touched yet
    reason = f"{params.reason}: {old} → {target}"
    report.engine_fenced = steps.fence(config_path, old, epoch + 1, f"fenced at epoch {epoch + 1} ({reason})")
    report.unfenced_target = steps.unfence_target(config_path, target)
    if report.engine_fenced:
        try:
            report.synced_rows = steps.sync_delta(config_path, old, target).rows
            report.records_at_risk = steps.count_at_risk(config_path, old, target)
        except BackendError as exc:
            report.notes.append(f"the last delta could not be copied: {exc}")
    if problem:  # the final delta (a full copy for a standby never synced) may have settled it
        problem = steps.not_in_sync(config_path, old, target)
        if problem and not params.force:
            steps.undo_fence(config_path, old, bool(report.engine_fenced))
            if report.unfenced_target:
                steps.fence(config_path, target, epoch, f"fenced again: the failover to {target} was refused")
            raise refuse_unsynced(old, target, problem)
        if problem:
            report.notes.append(f"forced: {problem}")
    if report.records_at_risk is None:
        report.at_risk_note = f"({old!r} did not answer; writes after its last sync to {target!r} may be missing)"
    try:
        new_epoch, active = steps.switch(config_path, epoch, target, reason)
    except PointerConflict as exc:
        report.status, report.new = "superseded", None
        report.notes.append(str(exc))
        return
    report.status, report.new, report.epoch_after = "switched", active, new_epoch
    report.switched_at = dt.datetime.now(dt.timezone.utc)
    if params.first_failed_at is not None:
        report.detect_to_switch_s = (report.switched_at - params.first_failed_at).total_seconds()


@flow(name="failover", log_prints=False, validate_parameters=True)
def failover(params: FailoverParams) -> FailoverReport:
    """The failover as a flow run: its steps as task runs, or (`decided`, set by the monitor) the record of a switch
    the monitor already made. Either way: the event and the artifact."""
    report = params.decided if params.decided is not None else fail_over(params, TASKS)
    if report.status == "switched":
        _emit_switched(report)
        get_run_logger().warning("Switched %s → %s at epoch %s (%s)", report.old, report.new, report.epoch_after,
                                 report.reason)
    create_markdown_artifact(key="failover", markdown=render(report),
                             description=f"failover {report.status}: {report.old} → {report.new or '-'}")
    return report


def _emit_switched(report: FailoverReport) -> None:
    emit_event(event="shiftover.backend.switched",
               resource={"prefect.resource.id": "shiftover.backend", "prefect.resource.name": "active backend"},
               related=[{"prefect.resource.id": f"shiftover.provider.{report.new}", "prefect.resource.role": "target"},
                        {"prefect.resource.id": f"shiftover.provider.{report.old}", "prefect.resource.role": "source"}],
               payload={"from": report.old, "to": report.new, "epoch": report.epoch_after,
                        "reason": f"{report.reason}: {report.old} → {report.new}",
                        "records_at_risk": report.records_at_risk})


# -- the monitor's failover: switch first, record after ----------------------------------------------------------------
def fail_over_first(**values: object) -> FailoverReport:
    """The monitor's `run_failover`: `fail_over` with the plain steps in this thread (no flow run, task run, API call
    or event on the path to the switch, so neither a busy machine nor a slow Prefect API delays it), then the
    `failover` flow run that records it, in a background thread. Returns the report at once."""
    params = FailoverParams(**values)
    report = fail_over(params, TASKS.plain())
    if report.status == "switched":
        report.notes.append(f"switched by the monitor in {report.flow_s:.2f} s before this run was recorded")
    log.warning("failover %s: %s → %s (epoch %s → %s) in %.2f s", report.status, report.old, report.new or "-",
                report.epoch_before, report.epoch_after or "-", report.flow_s)
    threading.Thread(target=_record, args=(params, report), name="shiftover-failover-record", daemon=True).start()
    return report


def _record(params: FailoverParams, report: FailoverReport) -> None:
    """Errors are logged, never raised: the switch stands whether or not Prefect can record it."""
    try:
        failover(params.model_copy(update={"decided": report}))
    except Exception:  # noqa: BLE001 - bookkeeping must not take the monitor down; the switch is in the control store
        log.exception("the failover to %s is done but could not be recorded as a flow run", report.new)
