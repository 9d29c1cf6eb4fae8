"""Which Prefect API the CLI talks to: a running one is reused (PREFECT_API_URL, or the server `shiftover serve`
registered), commands that need no flow import no Prefect, and a missing API is one BACKEND_018 line, no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.fixtures_clusters import free_port, write_config
from tests.fixtures_prefect import api_answers
from tests.helpers import stop_group

BIN = Path(sys.executable).parent
TEMPORARY_SERVER = "prefect.server.api.server:create_app"  # the uvicorn app of Prefect's temporary server


def _config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "spare": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'spare.db'}", "role": "standby", "priority": 2}})


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SHIFTOVER_API_STARTUP_TIMEOUT_S")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200", **extra)
    return env


def _run_watched(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a shiftover command; also return the command lines of every process it started (sampled every 50 ms)."""
    proc = subprocess.Popen([str(BIN / "shiftover"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: set[str] = set()

    def watch() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                for child in parent.children(recursive=True):
                    seen.add(" ".join(child.cmdline()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate(timeout=300)
    watcher.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), sorted(seen)


def _flow_runs(api: str, flow_name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            return await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(read())


@pytest.mark.parametrize("argv", [["status", "--json"], ["init", "--path", "{tmp}/new.yaml"], ["--version"],
                                  ["--help"]], ids=["status", "init", "version", "help"])
def test_commands_that_need_no_flow_import_no_prefect_gx_or_pandas(tmp_path: Path, argv: list[str]) -> None:
    cfg = _config(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv] + (["--config", str(cfg)] if argv[0] == "status" else [])
    script = ("import json, sys\nfrom shiftover.cli.main import app\ncode = 0\ntry:\n    app(args=sys.argv[1:], "
              "prog_name='shiftover')\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
              "heavy = [m for m in ('prefect', 'great_expectations', 'pandas') if m in sys.modules]\n"
              "print('MODULES ' + json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script, *args], env=_env(tmp_path / "home"), capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    line = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, done.stderr
    result = json.loads(line[-1].removeprefix("MODULES "))
    assert result == {"code": 0, "heavy": []}, (result, done.stderr[-2000:])
    if argv[0] == "status":
        assert json.loads(done.stdout)["active"] == "main"
    if argv[0] == "--version":
        assert done.stdout.startswith("shiftover ")


def test_an_unreachable_prefect_api_url_is_backend_015_without_a_traceback(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/api"
    for args in (["health"], ["migrate", "main", "spare"], ["sync"]):
        done = subprocess.run([str(BIN / "shiftover"), *args, "--config", str(cfg)], capture_output=True, text=True,
                              env=_env(tmp_path / "home", PREFECT_API_URL=url), timeout=120)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "BACKEND_018" in done.stderr and url in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_a_temporary_server_that_does_not_start_in_time_is_backend_015(tmp_path: Path) -> None:
    cfg = _config(tmp_path)  # a fresh PREFECT_HOME: the temporary server must first create its database
    done = subprocess.run([str(BIN / "shiftover"), "health", "--config", str(cfg)], capture_output=True, text=True,
                          env=_env(tmp_path / "fresh-home", SHIFTOVER_API_STARTUP_TIMEOUT_S="1"), timeout=180)
    assert done.returncode == 1
    assert "BACKEND_018" in done.stderr and "SHIFTOVER_API_STARTUP_TIMEOUT_S" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_commands_reuse_the_api_in_prefect_api_url_or_the_registered_one(running_prefect_api, tmp_path: Path) -> None:
    api, _ = running_prefect_api
    cfg = _config(tmp_path)
    before = len(_flow_runs(api, "health_sweep"))
    done, children = _run_watched(["health", "--config", str(cfg), "--json"],
                                  _env(tmp_path / "home-a", PREFECT_API_URL=api))
    assert done.returncode == 0, done.stderr
    assert {h["provider"] for h in json.loads(done.stdout)} == {"main", "spare"}
    assert not [c for c in children if TEMPORARY_SERVER in c], children
    assert len(_flow_runs(api, "health_sweep")) == before + 1

    home = tmp_path / "home-b"  # no PREFECT_API_URL: the server registered in PREFECT_HOME (as `shiftover serve` does)
    home.mkdir()
    (home / "shiftover-api.json").write_text(json.dumps({"url": api, "pid": os.getpid(), "started": "now"}))
    done, children = _run_watched(["health", "--config", str(cfg), "--json"], _env(home))
    assert done.returncode == 0, done.stderr
    assert not [c for c in children if TEMPORARY_SERVER in c], children
    assert len(_flow_runs(api, "health_sweep")) == before + 2


def test_serve_starts_and_registers_a_server_that_commands_reuse(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    home = tmp_path / "home"
    http_port, api_port = free_port(), free_port()
    env = _env(home, PREFECT_UI_ENABLED="false")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(BIN / "shiftover"), "serve", "--config", str(cfg), "--port", str(http_port),
                             "--api-port", str(api_port), "--no-monitor", "--sweep-interval", "3600",
                             "--sync-interval", "3600"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    registry = home / "shiftover-api.json"
    api = f"http://127.0.0.1:{api_port}/api"
    try:
        deadline = time.monotonic() + 240
        while not (registry.exists() and api_answers(api)):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not register its Prefect server"
            time.sleep(0.5)
        assert json.loads(registry.read_text())["url"] == api
        before = len(_flow_runs(api, "failover"))
        done, children = _run_watched(["failover", "--dry-run", "--config", str(cfg), "--json"], env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "dry-run"
        assert not [c for c in children if TEMPORARY_SERVER in c], children
        assert len(_flow_runs(api, "failover")) == before + 1
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/active", timeout=5) as r:
            assert json.loads(r.read())["provider"] == "main"
    finally:
        stop_group(proc)
        log.close()
    assert not registry.exists()  # stopped and unregistered: the next command will not wait on a dead server
    assert not api_answers(api)


def test_health_exits_at_once_and_its_task_runs_and_logs_still_reach_the_api(running_prefect_api,
                                                                             tmp_path: Path) -> None:
    """The CLI leaves without Python's module teardown and the flow runs without a heartbeat thread, yet the task-run
    events and the logs Prefect sends from its background workers are delivered before the process ends."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api, _ = running_prefect_api
    cfg = _config(tmp_path)
    before = {r.id for r in _flow_runs(api, "health_sweep")}
    done = subprocess.run([str(BIN / "shiftover"), "health", "--config", str(cfg), "--json"], capture_output=True,
                          text=True, env=_env(tmp_path / "home", PREFECT_API_URL=api, PREFECT_LOGGING_LEVEL="INFO"),
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert {h["provider"] for h in json.loads(done.stdout)} == {"main", "spare"}
    new = [r for r in _flow_runs(api, "health_sweep") if r.id not in before]
    assert len(new) == 1 and new[0].state.is_completed(), new

    async def task_runs() -> list:
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [new[0].id]}))

    expected = {"probe-main", "probe-spare"}
    deadline = time.monotonic() + 30
    with temporary_settings({PREFECT_API_URL: api}):
        while True:  # the server records task runs from the events as it consumes them
            runs = asyncio.run(task_runs())
            done_names = {r.name for r in runs if r.state and r.state.is_completed()}
            if expected <= done_names or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert expected <= done_names, [(r.name, r.state_name) for r in runs]
    assert any(n.startswith("record_health") for n in done_names), done_names

    async def logs() -> list[str]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        async with get_client() as client:
            found = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[new[0].id])))
            return [log.message for log in found]

    with temporary_settings({PREFECT_API_URL: api}):  # the run's last log line, sent by the exit handlers
        assert any("Finished in state Completed" in m for m in asyncio.run(logs())), asyncio.run(logs())
