"""`shiftover serve`: the deployments, the failover monitor and the read-only HTTP endpoint in one process.

- Deployments (deployments/catalogue.py), each with its pydantic form in the UI: health_sweep and sync on intervals run
  inside this process (service/scheduled_runs.py: no new interpreter per run); failover, migrate and the rest run on
  demand through `prefect.serve`, each run in a process of its own, picked up within `poll_s`.
- The monitor probes the active provider every failover.monitor_interval_s (every failover.retry_interval_s while
  it counts consecutive failures) and, when MonitorPolicy says so, runs the `failover` flow right here, in this
  already-running process (a deployment triggered by an event needs several seconds just to start). A second
  thread (the warden) fences old primaries as soon as they answer again and, with failback: automatic, moves back
  to the preferred provider after it has been stable for failback_stable_s.
- GET /active answers `{"provider", "epoch", "since", "reason"}` from the control store, for applications not
  written in Python; GET /healthz answers `{"status": "ok"}`; GET /status the `Status` model of adapters/status.py
  (active provider, each provider's health, last check, response time and uptime, and the routes); GET /metrics, in
  the Prometheus text format, this process's own measurements: the latency and failures (by BACKEND code) of the
  monitor's probes, per provider (`probe`; `probe.failback` for the preferred provider while failed over). Nothing
  else, and never a URL or key. All only read (ControlView): with no pointer yet /active and /status are 404, with an
  unreadable store 503, each with one JSON line `{"error": "BACKEND_0xx: ..."}`. FastAPI on uvicorn in a thread,
  with bounded connections, threads and timeouts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, ProviderUnavailable, redact
from shiftover.adapters.metrics import Recorder
from shiftover.adapters.status import status_at
from shiftover.control.store import ControlStore, Pointer, now
from shiftover.control.view import ControlView, NoPointerYet
from shiftover.tasks.failover import MonitorPolicy, fence_pending
from shiftover.tasks.health import probe_with_timeout

log = logging.getLogger("shiftover.serve")
_CODE = re.compile(r"BACKEND_\d{3}")
_NO_CODE = ("BACKEND_004",)  # a failed probe whose error names no code: health check failed
REPEAT_S = 300  # a problem the monitor keeps meeting is logged again after this long


def run_failover_flow(**params: object) -> object:
    """Fence and switch now, record the flow run after (flows/failover.py)."""
    from shiftover.flows.failover import fail_over_first

    return fail_over_first(**params)


class Monitor:
    """Probe the active provider at a short interval and fail over by the policy. `tick()` is one step."""

    def __init__(self, config_path: str, *, run_failover: Callable[..., object] = run_failover_flow,
                 recorder: Recorder | None = None) -> None:
        self.config = load_config(config_path)
        self.config_path = str(self.config.path)
        self.control = ControlStore(self.config.control.url.get_secret_value())
        self.policy = MonitorPolicy(self.config)
        self.run_failover = run_failover
        self.failovers: list[object] = []
        self.recorder = recorder or Recorder()  # GET /metrics renders it when serve shares it with the endpoint

    def _record(self, result: ProbeResult, operation: str) -> None:
        code = None if result.ok else (_CODE.search(result.error or "") or _NO_CODE)[0]
        self.recorder.record(result.provider, operation, result.latency_ms, code)

    def tick(self) -> object | None:
        pointer = self.control.ensure_pointer(self.config.primary())
        result = probe_with_timeout(self.config, pointer.provider, timeout_s=self.config.health.timeout_s,
                                    canary=False)
        self.control.record_probe(result, kept=self.config.health.kept())
        self._record(result, "probe")
        if not self.policy.observe(result, pointer):
            return None
        reason = (f"automatic: {self.policy.failures} consecutive failed probes of {pointer.provider} "
                  f"({result.error})")
        log.warning("%s; failing over", reason)
        report = self.run_failover(config_path=self.config_path, reason=reason, expected_epoch=pointer.epoch,
                                   first_failed_at=self.policy.first_failed_at)
        self.failovers.append(report)
        return report

    def probe_interval(self) -> float:
        """From one probe's start to the next: monitor_interval_s, or retry_interval_s after a failed probe until
        consecutive_failures is reached (so a refused connection is confirmed in a fraction of the interval). At
        the threshold, and while a refused failover or the cool-down holds the switch, back to the full interval."""
        policy = self.config.failover
        if 0 < self.policy.failures < policy.consecutive_failures:
            return min(policy.retry_interval_s, policy.monitor_interval_s)
        return policy.monitor_interval_s

    def warden_tick(self) -> object | None:
        for returned in fence_pending(self.config, self.control):
            log.warning("old primary %s answers again: fenced in its engine; records at risk: %s",
                        returned.provider, returned.records_at_risk)
        pointer = self.control.ensure_pointer(self.config.primary())
        preferred = self.config.primary()
        if self.config.failover.failback != "automatic" or pointer.provider == preferred:
            return None
        probe = probe_with_timeout(self.config, preferred, timeout_s=self.config.health.timeout_s, canary=False)
        self.control.record_probe(probe, kept=self.config.health.kept())
        self._record(probe, "probe.failback")
        self.policy.observe_preferred(probe)
        target = self.policy.failback_due(pointer, now())
        if target is None:
            return None
        report = self.run_failover(config_path=self.config_path, to=target, expected_epoch=pointer.epoch,
                                   reason=f"automatic failback: {target} stable for "
                                          f"{self.config.failover.failback_stable_s:g} s")
        self.policy.ok_since.pop(target, None)
        self.failovers.append(report)
        return report

    def _loop(self, step: Callable[[], object], interval: Callable[[], float], stop: threading.Event) -> None:
        said, said_at = "", 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                step()
                said = ""
            except BackendError as exc:  # a refusal (BACKEND_017: no standby in sync…): one line, not one per probe
                if str(exc) != said or started - said_at >= REPEAT_S:
                    log.warning("monitor: %s — retried at every probe; said again in %d s if it persists",
                                exc, REPEAT_S)
                    said, said_at = str(exc), started
            except Exception:  # noqa: BLE001 - the monitor must outlive any one failed step; the error is logged
                log.exception("monitor step failed; continuing")
            stop.wait(max(0.0, interval() - (time.monotonic() - started)))

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        if self.run_failover is run_failover_flow:  # imported now, not by the first failover on a busy machine
            import shiftover.flows.failover  # noqa: F401
        warden_s = max(self.config.failover.monitor_interval_s, 2.0)
        threads = [
            threading.Thread(target=self._loop, args=(self.tick, self.probe_interval, stop), name="shiftover-monitor",
                             daemon=True),
            threading.Thread(target=self._loop, args=(self.warden_tick, lambda: warden_s, stop),
                             name="shiftover-warden", daemon=True),
        ]
        for t in threads:
            t.start()
        return threads


def pointer_json(pointer: Pointer) -> dict[str, object]:
    return {"provider": pointer.provider, "epoch": pointer.epoch, "since": pointer.since.isoformat(),
            "reason": pointer.reason}


_ENDPOINTS = "GET /active, /healthz, /status or /metrics"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class Answers:
    """What the endpoint's GETs answer, as (HTTP status, JSON body). Never raises: no pointer yet is 404, a store that
    cannot be read 503, each `{"error": "BACKEND_0xx: ..."}`; each distinct problem is logged once."""

    def __init__(self, config: Config, view: ControlView, recorder: Recorder) -> None:
        self.config, self.view, self.recorder = config, view, recorder
        self.last_error = ""

    def _failed(self, path: str, text: str) -> tuple[int, dict[str, object]]:
        if text != self.last_error:  # once per distinct problem, not once per request
            self.last_error = text
            log.warning("GET %s: %s", path, text)
        return 503, {"error": text}

    def _guard(self, path: str, read: Callable[[], dict[str, Any]]) -> tuple[int, dict[str, object]]:
        try:
            body = read()
        except NoPointerYet as exc:
            return 404, {"error": str(exc)}
        except BackendError as exc:
            return self._failed(path, str(exc))
        except Exception as exc:  # noqa: BLE001 - an endpoint answers; the error is logged in one line
            return self._failed(path, f"{BackendError.code}: unexpected error reading the control store: "
                                      f"{type(exc).__name__}: "
                                      f"{redact(str(exc).strip().splitlines()[0] if str(exc).strip() else '')[:200]}")
        self.last_error = ""
        return 200, body

    def active(self) -> tuple[int, dict[str, object]]:
        return self._guard("/active", lambda: pointer_json(self.view.pointer()))

    def status(self) -> tuple[int, dict[str, object]]:
        """adapters/status.Status: the active provider, each provider's health, and the routes."""
        return self._guard("/status", lambda: status_at(self.config, self.view.pointer(), self.view)
                           .model_dump(mode="json"))

    def metrics(self) -> str:
        """This process's own measurements (the monitor's probes) in the Prometheus text format."""
        return self.recorder.snapshot().prometheus()


def http_app(config_path: str, recorder: Recorder | None = None) -> Any:
    """GET /active, /healthz, /status and /metrics as a FastAPI app. Reads go through ControlView: a GET never
    writes. /metrics renders `recorder` (the monitor's probes, when serve shares one with it)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    config = load_config(config_path)
    answers = Answers(config, ControlView(config.control.url.get_secret_value()), recorder or Recorder())
    headers = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}
    app = FastAPI(title="shiftover", docs_url=None, redoc_url=None, openapi_url=None)

    def answer(status: int, body: dict[str, object]) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get("/active")
    def active() -> JSONResponse:  # a plain def: FastAPI runs it on its bounded thread pool
        return answer(*answers.active())

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        status, body = answers.active()
        if status == 503:
            return answer(503, {"status": "unavailable", "error": body["error"]})
        return answer(200, {"status": "ok"})

    @app.get("/status")
    def status() -> JSONResponse:
        return answer(*answers.status())

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(answers.metrics(), media_type=PROMETHEUS, headers=headers)

    @app.exception_handler(404)
    async def not_found(_request: Any, _exc: Exception) -> JSONResponse:
        return answer(404, {"error": f"not found; use {_ENDPOINTS}"})

    @app.exception_handler(405)
    async def not_allowed(_request: Any, _exc: Exception) -> JSONResponse:
        return answer(405, {"error": f"read-only: use {_ENDPOINTS}"})

    @app.exception_handler(Exception)
    async def failed(_request: Any, exc: Exception) -> JSONResponse:
        log.warning("HTTP endpoint: unexpected %s", type(exc).__name__)
        return answer(500, {"error": f"{BackendError.code}: unexpected error ({type(exc).__name__}); see the log"})

    app.state.view = answers.view  # closed by Endpoint.stop
    return app


class Endpoint:
    """The HTTP endpoint on uvicorn in a thread of its own. Bounded: at most `max_connections` open connections
    (past that uvicorn answers 503), a request's headers must arrive within `header_timeout_s`, idle keep-alive
    connections close after `keep_alive_s`, at most `max_threads` threads answer GETs, a listen backlog of 128."""

    def __init__(self, config_path: str, host: str = "127.0.0.1", port: int = 8765, *, max_connections: int = 512,
                 header_timeout_s: float = 5.0, keep_alive_s: float = 5.0, max_threads: int = 4,
                 recorder: Recorder | None = None) -> None:
        import uvicorn

        from shiftover.service.http_deadline import deadline_protocol

        self.max_threads = max_threads
        self.app = http_app(config_path, recorder)
        self.config = uvicorn.Config(
            self.app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
            http=deadline_protocol(header_timeout_s), ws="none", timeout_keep_alive=int(keep_alive_s),
            limit_concurrency=max_connections, backlog=128, timeout_graceful_shutdown=2,
            server_header=False, proxy_headers=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, name="shiftover-http", daemon=True)

    def _run(self) -> None:
        import asyncio

        import anyio.to_thread

        async def main() -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.max_threads
            await self.server.serve()

        asyncio.run(main())

    def start(self, timeout_s: float = 10.0) -> Endpoint:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ProviderUnavailable(f"the HTTP endpoint could not listen on {self.config.host}:"
                                          f"{self.config.port}", hint="pick another --port or stop what uses it")
            time.sleep(0.05)
        return self

    @property
    def port(self) -> int:
        sockets = [s for server in getattr(self.server, "servers", []) for s in server.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else self.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.view.close()


def serve(config_path: str, *, host: str = "127.0.0.1", port: int = 8765, monitor: bool = True,
          sweep_interval_s: float | None = None, sync_interval_s: float | None = None, poll_s: float = 2.0) -> None:
    """Run everything until interrupted. Scheduled deployments run in this process (service/scheduled_runs.py); the
    on-demand ones (migrate, failover, ...) in a process of their own, picked up within `poll_s`."""
    from prefect import serve as prefect_serve

    from shiftover.deployments.catalogue import IN_PROCESS, build_deployments, in_process
    from shiftover.service.scheduled_runs import InProcessRunner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("shiftover").setLevel(logging.INFO)  # when the CLI's handlers are in place basicConfig is a no-op
    stop = threading.Event()
    recorder = Recorder()  # the monitor's probes, rendered by GET /metrics
    endpoint = Endpoint(config_path, host, port, recorder=recorder).start()
    log.info("GET http://%s:%s/active answers the active backend (/status, /metrics too)", host, endpoint.port)
    if monitor:
        Monitor(config_path, recorder=recorder).start(stop)
    deployments = build_deployments(config_path, sweep_interval_s=sweep_interval_s, sync_interval_s=sync_interval_s)
    scheduled = InProcessRunner(in_process(deployments), poll_s=poll_s)
    try:
        scheduled.start()
        prefect_serve(*[d for d in deployments if d.name not in IN_PROCESS], query_seconds=poll_s)
    finally:
        scheduled.stop()
        stop.set()
        endpoint.stop()
