"""`shiftover serve` against a real `prefect server`: deployments appear, a scheduled health_sweep run completes with
its artifact, GET /active answers the pointer without secrets; deployments/prefect.yaml passes `prefect deploy`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures_clusters import free_port, write_config
from tests.helpers import stop_group

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _get(url: str, timeout: float = 2) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _wait(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": ""}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait(lambda: _get(f"{api}/health") is True, 180, "prefect server start")
        yield api, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def _client_call(api: str, fn):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def run():
        async with get_client() as client:
            return await fn(client)

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(run())


def test_serve_runs_the_scheduled_sweep_and_answers_the_active_backend(prefect_server, tmp_path):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    api, home = prefect_server
    secret = "s3cr3t-pw"
    config = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "spare": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'spare.db'}", "role": "standby", "priority": 2},
        "remote": {"kind": "postgresql", "url": f"postgresql+psycopg://app:{secret}@127.0.0.1:1/app",
                   "role": "none"},
    })
    http_port = free_port()
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(BIN / "shiftover"), "serve", "--config", str(config), "--port", str(http_port),
                             "--sweep-interval", "10", "--sync-interval", "3600"],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        active = _wait(lambda: _get(f"http://127.0.0.1:{http_port}/active"), 60, "GET /active")
        assert active["provider"] == "main" and active["epoch"] == 1 and set(active) == {"provider", "epoch",
                                                                                        "since", "reason"}
        assert _get(f"http://127.0.0.1:{http_port}/healthz") == {"status": "ok"}

        names = _wait(lambda: {d.name for d in _client_call(api, lambda c: c.read_deployments())} >= {
            "health-sweep", "sync", "failover", "migrate"} or None, 60, "deployments")
        assert names

        def completed_sweep():
            runs = _client_call(api, lambda c: c.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["health_sweep"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])))))
            return runs[0] if runs else None

        run = _wait(completed_sweep, 150, "a completed scheduled health_sweep run", step=2)
        assert run.auto_scheduled or run.deployment_id is not None
        artifacts = _client_call(api, lambda c: c.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["health-sweep"]))))
        table = artifacts[0].data if isinstance(artifacts[0].data, list) else json.loads(artifacts[0].data)
        rows = {r["provider"]: r for r in table}
        assert rows["main (active)"]["status"] == "healthy" and rows["spare"]["status"] == "healthy"
        assert rows["remote"]["status"] == "down"
        assert secret not in json.dumps(table) and secret not in (tmp_path / "serve.log").read_text()

        from prefect.settings import PREFECT_API_URL, temporary_settings

        from shiftover.deployments.automations import AUTOMATION_NAME, create

        with temporary_settings({PREFECT_API_URL: api}):
            automation_id = create(str(config))
            from prefect.automations import Automation

            made = Automation.read(id=automation_id)
        assert made.name == AUTOMATION_NAME and "shiftover.provider.down" in made.trigger.expect
    finally:
        stop_group(proc, timeout=20)
        log.close()


def test_prefect_yaml_deploys_to_a_work_pool(prefect_server, tmp_path):
    api, home = prefect_server
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), "SHIFTOVER_CONFIG": "/etc/x/backends.yaml",
           "SHIFTOVER_PROJECT_DIR": str(ROOT)}
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "shiftover", "--type", "process"], env=env,
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    done = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file",
                           "deployments/prefect.yaml"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    deployments = _client_call(api, lambda c: c.read_deployments())
    pooled = {d.name: d for d in deployments if d.work_pool_name == "shiftover"}
    assert set(pooled) == {"health-sweep", "sync", "failover", "migrate", "full-test-suite", "analyze-codebase"}
    assert "path" in json.dumps(pooled["analyze-codebase"].parameter_openapi_schema)
    assert pooled["health-sweep"].entrypoint == "flows/health_sweep.py:health_sweep"
    assert pooled["failover"].parameters == {"params": {"config_path": "/etc/x/backends.yaml"}}
    assert pooled["health-sweep"].schedules[0].schedule.interval.total_seconds() == 30
    assert (pooled["sync"].global_concurrency_limit.limit,
            pooled["sync"].concurrency_options.collision_strategy.value) == (1, "CANCEL_NEW")
    assert pooled["migrate"].concurrency_options.collision_strategy.value == "ENQUEUE"
    assert "config_path" in json.dumps(pooled["migrate"].parameter_openapi_schema)
