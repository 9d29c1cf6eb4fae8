"""GET /status and GET /metrics of `shiftover serve`'s read-only endpoint: the Status model (routes included) as
JSON, the serve process's own probe measurements in the Prometheus text format, and errors as one JSON line with a
BACKEND code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from shiftover.adapters.config import load_config
from shiftover.control.store import ControlStore
from shiftover.service.process import Endpoint, Monitor
from tests.fixtures_clusters import free_port, write_config
from tests.helpers import stop_group

BIN = Path(sys.executable).parent


def _get(url: str) -> tuple[int, str, str]:
    """(status, content type, body)"""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()
    except OSError:
        return 0, "", ""


def _config(tmp_path: Path, **sections: dict) -> Path:
    return write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "side": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'side.db'}", "role": "standby", "priority": 2},
        "spare": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'spare.db'}", "role": "standby", "priority": 3},
    }, **sections)


def _probe_counts(text: str) -> dict[tuple[str, str], float]:
    """(provider, operation) -> calls, from the summary's _count samples, read with Prometheus's own parser."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    summary = families["shiftover_operation_duration_seconds"]
    assert summary.type == "summary"
    return {(s.labels["provider"], s.labels["operation"]): s.value for s in summary.samples
            if s.name.endswith("_count")}


def test_a_started_serve_answers_status_with_routes_and_metrics_with_its_probes(running_prefect_api, tmp_path):
    api, _ = running_prefect_api
    config = _config(tmp_path, services={"collections": {"customers": "side"}})
    ControlStore(f"sqlite:///{tmp_path / 'control.db'}").set_route("orders", "spare")
    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "home"),
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "shiftover"), "serve", "--config", str(config), "--port", str(port),
                             "--sweep-interval", "3600", "--sync-interval", "3600"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # until the monitor (one probe of the active provider a second) has probed at least twice
            code, ctype, text = _get(f"{base}/metrics")
            if code == 200 and _probe_counts(text).get(("main", "probe"), 0) >= 2:
                break
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"no probes in /metrics: {code} {text[:500]}"
            time.sleep(0.5)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert set(_probe_counts(text)) == {("main", "probe")}  # what this process measured: its monitor's probes
        assert "shiftover_operation_errors_total" in text

        code, ctype, body = _get(f"{base}/status")
        status = json.loads(body)
    finally:
        stop_group(proc)
        log.close()
    assert code == 200 and ctype == "application/json" and "\n" not in body
    assert (status["current_provider"], status["epoch"]) == ("main", 1)
    assert status["last_check"] and status["response_time_ms"] > 0 and status["uptime"] == 100.0
    assert [p["name"] for p in status["providers"]] == ["main", "side", "spare"]
    assert [(r["route"], r["provider"], r["set_by"]) for r in status["routes"]] == [
        ("db.orders", "spare", "migration"), ("db.customers", "side", "services")]
    assert all(set(r) == {"route", "provider", "set_by", "health", "last_check", "response_time_ms", "uptime"}
               for r in status["routes"])


def test_status_and_metrics_errors_are_one_json_line_with_a_backend_code(tmp_path):
    db = tmp_path / "control.db"
    ep = Endpoint(str(_config(tmp_path)), "127.0.0.1", 0, header_timeout_s=2).start()
    base = f"http://127.0.0.1:{ep.port}"
    try:
        code, ctype, body = _get(f"{base}/status")  # no pointer yet, and a GET creates none
        assert code == 404 and ctype == "application/json" and json.loads(body)["error"].startswith("BACKEND_001")
        assert not db.exists()
        code, ctype, body = _get(f"{base}/metrics")  # nothing measured yet: the families' headers only
        families = list(text_string_to_metric_families(body))
        assert code == 200 and [(f.name, f.samples) for f in families] == [
            ("shiftover_operation_duration_seconds", []), ("shiftover_operation_errors", [])]

        db.write_bytes(os.urandom(16384))  # a damaged store
        code, _, body = _get(f"{base}/status")
        assert code == 503 and "\n" not in body and json.loads(body)["error"].startswith("BACKEND_006")
        assert "Traceback" not in body

        db.unlink()
        store = ControlStore(f"sqlite:///{db}")
        store.ensure_pointer("side")
        store.close()
        code, _, body = _get(f"{base}/status")
        assert code == 200 and json.loads(body)["current_provider"] == "side"

        req = urllib.request.Request(f"{base}/status", method="POST", data=b"{}")
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("POST /status was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405 and "GET /active, /healthz, /status or /metrics" in json.loads(exc.read())["error"]
    finally:
        ep.stop()


def test_the_monitors_failed_probes_are_counted_by_code(tmp_path):
    config = write_config(tmp_path, {
        "gone": {"kind": "postgresql", "url": "postgresql+psycopg://u@127.0.0.1:1/db", "role": "primary"},
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "standby"},
    })
    monitor = Monitor(str(config), run_failover=lambda **_: None)
    try:
        monitor.tick()
    finally:
        monitor.control.close()
    metrics = monitor.recorder.snapshot()
    probe = metrics.get("gone", "probe")
    assert probe is not None and probe.calls == 1 and sum(probe.errors.values()) == 1
    (code,) = probe.errors
    assert code.startswith("BACKEND_0")
    families = {f.name: f for f in text_string_to_metric_families(metrics.prometheus())}
    errors = families["shiftover_operation_errors"].samples
    assert [(s.labels["provider"], s.labels["code"], s.value) for s in errors] == [("gone", code, 1.0)]
    assert load_config(config).providers["gone"].kind == "postgresql"
