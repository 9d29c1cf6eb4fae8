"""`shiftover serve` with a sweep interval far shorter than a sweep: never two runs of the deployment at once, and
no process started for any of them (they run inside serve)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.fixtures_clusters import free_port, write_config
from tests.helpers import stop_group

BIN = Path(sys.executable).parent


def _runs_of(api: str, deployment: str, since: dt.datetime) -> list:
    """The deployment's runs created since `since`: the session's API also holds runs of other tests' serves."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            found = await client.read_deployment_by_name(deployment)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200)
            return [r for r in runs if r.created is not None and r.created >= since]

    with temporary_settings({PREFECT_API_URL: api}):
        try:
            return asyncio.run(read())
        except Exception:  # noqa: BLE001 - the deployment is not created yet
            return []


def test_a_slow_sweep_never_overlaps_the_next_scheduled_one(running_prefect_api, tmp_path):
    api, _ = running_prefect_api
    since = dt.datetime.now(dt.timezone.utc)
    hole = socket.socket()  # accepts connections (backlog) and never answers: each probe of it takes its full timeout
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    config = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "hung": {"kind": "postgresql", "url": f"postgresql+psycopg://u@127.0.0.1:{hole.getsockname()[1]}/db",
                 "role": "standby", "priority": 2, "options": {"connect_timeout_s": 60}},
    }, health={"timeout_s": 8})
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "home"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "shiftover"), "serve", "--config", str(config), "--port", str(free_port()),
                             "--no-monitor", "--sweep-interval", "3", "--sync-interval", "3600"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not any(r.state and r.state.is_running() for r in _runs_of(api, "health_sweep/health-sweep", since)):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no health-sweep run started"
            time.sleep(1)
        children = 0
        for _ in range(30):  # ~10 intervals of 3 s, each sweep ≥ 8 s
            children = max(children, len(psutil.Process(proc.pid).children(recursive=True)))
            time.sleep(1)
        runs = _runs_of(api, "health_sweep/health-sweep", since)
    finally:
        stop_group(proc)
        log.close()
        hole.close()

    now = dt.datetime.now(dt.timezone.utc)
    ran = sorted(((r.start_time, r.end_time or now) for r in runs if r.run_count > 0), key=lambda x: x[0])
    assert len(ran) >= 2, [(r.name, r.state_name, r.run_count) for r in runs]
    for (_, end), (start, _) in zip(ran, ran[1:], strict=False):
        assert start >= end, f"two health-sweep runs ran at once: {ran}"
    skipped = [r for r in runs if r.state_name == "Cancelled" and r.run_count == 0]
    # runs that would have overlapped were cancelled
    assert skipped, [(r.name, r.state_name, r.run_count) for r in runs]
    assert all(r.state.message and "concurrency limit" in r.state.message.lower() for r in skipped)
    assert children == 0  # the sweeps ran inside serve: no interpreter started for any of them
    completed = [r for r in runs if r.state_name == "Completed"]
    assert completed and all(r.total_run_time.total_seconds() >= 7 for r in completed), [  # the sweep was slow
        (r.name, r.total_run_time, r.start_time, r.end_time, r.state.message) for r in completed]
