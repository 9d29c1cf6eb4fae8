"""Scheduled deployments run inside `shiftover serve`: no new interpreter, Prefect, drivers or GX per run.

`prefect.serve` starts every flow run in a new process (~600 MB and seconds of imports each), which a sweep every
10 s cannot afford. `InProcessRunner` takes the interval deployments (health-sweep, sync) instead:

- it registers them with the Prefect API like `prefect.serve` does, so the server's scheduler creates their runs and
  the UI shows schedule, parameter form and runs under each deployment (a run started from the UI is run too);
- a thread polls the API every `poll_s` for their runs that are due, proposes Pending (the server's deployment
  concurrency limit still applies) and runs each with Prefect's own engine, `prefect.flow_engine.run_flow(flow,
  flow_run=...)`, on that deployment's single worker thread: a small bounded pool, one thread per deployment;
- a deployment runs at most one run at a time. A run that comes due while the previous one still runs is skipped: it
  ends Cancelled with "skipped: the previous run is still running"; older due runs (serve was stopped for a while)
  are skipped for the newest one, so no backlog ever piles up;
- on stop it waits up to `wait_s` for the runs in flight and pauses the schedules, as `prefect.serve` does.

The Prefect calls used here (RunnerDeployment.apply, the client's get_scheduled_flow_runs_for_deployments,
set_flow_run_state and pause_deployment, propose_state_sync, flow_engine.run_flow) are those Prefect's own Runner
makes; `check_prefect()` names the versions this was tested with (tests/test_serve_inprocess.py).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

if TYPE_CHECKING:
    from prefect.states import State

log = logging.getLogger("shiftover.serve")

TESTED = ("3.8",)  # Prefect minor versions whose engine and client calls below were checked
SKIPPED_BUSY = "skipped: the previous run is still running (deployment concurrency limit 1)"
SKIPPED_STALE = "skipped: a later scheduled run of this deployment is due (no backlog is run)"


def check_prefect() -> str:
    """Prefect's version; a warning when it is not one this module was tested with."""
    import prefect

    version = str(prefect.__version__)
    if not version.startswith(TESTED):
        log.warning("Prefect %s: in-process scheduled runs were tested with Prefect %s only", version,
                    ", ".join(TESTED))
    return version


@dataclass
class Served:
    """One deployment run in this process."""

    name: str
    flow: Any
    id: UUID
    pool: ThreadPoolExecutor
    running: Future | None = None
    started: int = 0  # counts, not lists: serve runs for weeks
    skipped: int = 0

    def busy(self) -> bool:
        return self.running is not None and not self.running.done()


class InProcessRunner:
    """Runs the scheduled runs of `deployments`, (flow, its RunnerDeployment) pairs, in this process, one at a time
    each."""

    def __init__(self, deployments: Sequence[tuple[Any, Any]], *, poll_s: float = 1.0,
                 pause_on_shutdown: bool = True) -> None:
        self.deployments, self.poll_s, self.pause_on_shutdown = list(deployments), poll_s, pause_on_shutdown
        self.served: dict[UUID, Served] = {}
        self._stop = threading.Event()
        self._context = contextvars.copy_context()  # Prefect's settings of the caller, for every thread started here
        self._thread = threading.Thread(target=self._context.copy().run, args=(self._loop,),
                                        name="shiftover-scheduled", daemon=True)

    def start(self) -> InProcessRunner:
        check_prefect()
        for flow, d in self.deployments:
            deployment_id = d.apply()
            self.served[deployment_id] = Served(
                f"{flow.name}/{d.name}", flow, deployment_id,
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shiftover-{d.name}"))
        self._thread.start()
        return self

    def stop(self, wait_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.poll_s + 10)
        deadline = time.monotonic() + wait_s
        for s in self.served.values():
            if s.running is not None:
                try:
                    s.running.result(timeout=max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    log.warning("%s: a run did not end within %g s of stopping", s.name, wait_s)
            s.pool.shutdown(wait=False, cancel_futures=True)
        if self.pause_on_shutdown and self.served:
            from prefect.client.orchestration import get_client

            try:
                with get_client(sync_client=True) as client:
                    for s in self.served.values():
                        client.pause_deployment(s.id)
            except Exception as exc:  # noqa: BLE001 - stopping goes on; the schedules then stay active
                log.warning("could not pause the schedules of %s: %s", ", ".join(s.name for s in self.served.values()),
                            exc)

    def _loop(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.poll(client)
                except Exception:  # noqa: BLE001 - the API may be away a moment; the next poll tries again
                    log.exception("polling for scheduled runs failed; trying again")
                self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))

    def poll(self, client: Any) -> None:
        """One step: every due run of every served deployment is started or skipped."""
        due = client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(self.served), scheduled_before=dt.datetime.now(dt.timezone.utc), limit=100)
        by_deployment: dict[UUID, list[Any]] = {}
        for run in due:
            if run.deployment_id in self.served and run.state and run.state.is_scheduled():
                by_deployment.setdefault(run.deployment_id, []).append(run)
        for deployment_id, runs in by_deployment.items():
            s = self.served[deployment_id]
            runs.sort(key=lambda r: r.expected_start_time or r.created)
            for stale in runs[:-1]:
                self._skip(client, s, stale, SKIPPED_STALE)
            if s.busy():
                self._skip(client, s, runs[-1], SKIPPED_BUSY)
            else:
                self._submit(client, s, runs[-1])

    def _skip(self, client: Any, s: Served, run: Any, why: str) -> None:
        from prefect.states import Cancelled

        client.set_flow_run_state(run.id, Cancelled(message=why), force=True)
        s.skipped += 1
        log.info("%s: run %s %s", s.name, run.name, why)

    def _submit(self, client: Any, s: Served, run: Any) -> None:
        from prefect.exceptions import Abort
        from prefect.states import Pending
        from prefect.utilities.engine import propose_state_sync

        try:
            state = propose_state_sync(client, Pending(), flow_run_id=run.id)
        except Abort as exc:  # the server refused it (e.g. its concurrency limit): it says so on the run
            log.info("%s: run %s not started: %s", s.name, run.name, exc)
            return
        if not state.is_pending():
            log.info("%s: run %s not started: the server set it %s", s.name, run.name, state.name)
            return
        s.started += 1
        s.running = s.pool.submit(self._context.copy().run, self._run, s, run.id)

    @staticmethod
    def _run(s: Served, flow_run_id: UUID) -> None:
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow

        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(flow_run_id)  # with its Pending state and concurrency lease
            state = cast("State[Any]", run_flow(s.flow, flow_run=flow_run, return_type="state"))  # a sync flow
        except Exception:  # noqa: BLE001 - e.g. the API went away mid-run; the worker stays for the next run
            log.exception("%s: run %s could not be run", s.name, flow_run_id)
            return
        if not state.is_completed():
            log.warning("%s: run %s ended %s: %s", s.name, flow_run.name, state.name, state.message)
