"""`shiftover serve`: the deployments, the failover monitor and the read-only HTTP endpoint in one process.

- Deployments (deployments/serve.py) are served with `prefect.serve`: health_sweep and sync on intervals, failover
  and migrate on demand, each with its pydantic form in the UI.
- The monitor probes the active provider every failover.monitor_interval_s and, when MonitorPolicy says so, runs
  the `failover` flow right here, in this already-running process (a deployment triggered by an event needs several
  seconds just to start). A second thread (the warden) fences old primaries as soon as they answer again and, with
  failback: automatic, moves back to the preferred provider after it has been stable for failback_stable_s.
- GET /active answers `{"provider", "epoch", "since", "reason"}` from the control store, for applications not
  written in Python; GET /healthz answers `{"status": "ok"}`. Nothing else, and never a URL or key.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from adapters.config import load_config
from adapters.control import ControlStore, now
from tasks.failover import MonitorPolicy, fence_pending
from tasks.health import probe_with_timeout

log = logging.getLogger("shiftover.serve")


def run_failover_flow(**params: object) -> object:
    """Fence and switch now, record the flow run after (flows/failover_now.py)."""
    from flows.failover_now import fail_over_first

    return fail_over_first(**params)


class Monitor:
    """Probe the active provider at a short interval and fail over by the policy. `tick()` is one step."""

    def __init__(self, config_path: str, *, run_failover: Callable[..., object] = run_failover_flow) -> None:
        self.config = load_config(config_path)
        self.config_path = str(self.config.path)
        self.control = ControlStore(self.config.control.url.get_secret_value())
        self.policy = MonitorPolicy(self.config)
        self.run_failover = run_failover
        self.failovers: list[object] = []

    def tick(self) -> object | None:
        pointer = self.control.ensure_pointer(self.config.primary())
        result = probe_with_timeout(self.config, pointer.provider, timeout_s=self.config.health.timeout_s,
                                    canary=False)
        self.control.record_probe(result, kept=self.config.health.kept())
        if not self.policy.observe(result, pointer):
            return None
        reason = (f"automatic: {self.policy.failures} consecutive failed probes of {pointer.provider} "
                  f"({result.error})")
        log.warning("%s; failing over", reason)
        report = self.run_failover(config_path=self.config_path, reason=reason, expected_epoch=pointer.epoch,
                                   first_failed_at=self.policy.first_failed_at)
        self.failovers.append(report)
        return report

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

    def _loop(self, step: Callable[[], object], interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                step()
            except Exception:  # noqa: BLE001 - the monitor must outlive any one failed step; the error is logged
                log.exception("monitor step failed; continuing")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        interval = self.config.failover.monitor_interval_s
        threads = [
            threading.Thread(target=self._loop, args=(self.tick, interval, stop), name="shiftover-monitor",
                             daemon=True),
            threading.Thread(target=self._loop, args=(self.warden_tick, max(interval, 2.0), stop),
                             name="shiftover-warden", daemon=True),
        ]
        for t in threads:
            t.start()
        return threads


def pointer_json(control: ControlStore, default_provider: str) -> dict[str, object]:
    p = control.ensure_pointer(default_provider)
    return {"provider": p.provider, "epoch": p.epoch, "since": p.since.isoformat(), "reason": p.reason}


def http_server(config_path: str, host: str, port: int) -> ThreadingHTTPServer:
    """The read-only endpoint; call serve_forever() on it (in a thread)."""
    config = load_config(config_path)
    control = ControlStore(config.control.url.get_secret_value())
    primary = config.primary()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/active":
                self._send(200, pointer_json(control, primary))
            elif path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "not found; use GET /active"})

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def serve(config_path: str, *, host: str = "127.0.0.1", port: int = 8765, monitor: bool = True,
          sweep_interval_s: float | None = None, sync_interval_s: float | None = None) -> None:
    """Run everything until interrupted."""
    from prefect import serve as prefect_serve

    from deployments.serve import build_deployments

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    server = http_server(config_path, host, port)
    threading.Thread(target=server.serve_forever, name="shiftover-http", daemon=True).start()
    log.info("GET http://%s:%s/active answers the active backend", host, server.server_address[1])
    if monitor:
        Monitor(config_path).start(stop)
    try:
        prefect_serve(*build_deployments(config_path, sweep_interval_s=sweep_interval_s,
                                         sync_interval_s=sync_interval_s))
    finally:
        stop.set()
        server.shutdown()
