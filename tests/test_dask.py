"""The same migrate flow with chunks mapped over a local 2-worker Dask cluster (prefect-dask) ends equal; with
--dask-address the chunks run on an existing dask.distributed cluster's worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from tests.helpers import assert_same_records, config, write_config
from tests.test_bluegreen import control, seed_items

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_blue_green_on_dask_workers_ends_equal(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 4000)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=500, runner="dask", workers=2)
    assert report.status == "switched", report.error
    store = control(cfg_path)
    chunks = store.chunks(report.run_id)
    assert len(chunks) == 9 and all(c.done for c in chunks)
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert assert_same_records(src, dst, "items") == 4000
    assert store.pointer().provider == "dst"
    assert _dask_task_runs(report.run_id) >= 9


def _dask_task_runs(run_id: str) -> int:
    """Completed copy_chunk task runs recorded by the Prefect API under the run's copy-chunks subflow."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        subflows = [f for f in client.read_flow_runs() if f.parameters.get("run_id") == run_id]
        assert subflows, "no copy-chunks subflow run"
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [f.id for f in subflows]}),
                                     task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="copy_chunk")))
    return sum(1 for r in runs if r.state and r.state.is_completed())




def test_cli_immediate_on_dask(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    from typer.testing import CliRunner

    from shiftover.cli.main import app

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 1000)
    result = CliRunner().invoke(app, ["migrate", "src", "dst", "--strategy", "immediate", "--runner", "dask",
                                      "--chunk-rows", "300", "--config", str(cfg_path)])
    assert result.exit_code == 0, result.output
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert assert_same_records(src, dst, "items") == 1000
    assert control(cfg_path).pointer().provider == "dst"


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A dask.distributed scheduler and two one-thread workers, each its own process as `dask scheduler` and
    `dask worker` start them; the workers know the test's Prefect API as a user's would (PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    dask = Path(sys.executable).parent / "dask"
    file = tmp_path / "scheduler.json"
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 120
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        procs += [subprocess.Popen([str(dask), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                    "--name", f"w{i}"], env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_cli_runs_the_chunks_on_an_existing_dask_cluster(tmp_path: Path, pg_url: str, pg_url2: str,
                                                          dask_cluster: str) -> None:
    from distributed import Client, get_task_stream
    from typer.testing import CliRunner

    from shiftover.cli.main import app

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 1000)
    with Client(dask_cluster, timeout=60) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        assert len(pids) == 2 and os.getpid() not in pids.values()
        with get_task_stream(client) as stream:  # every task the scheduler hands out, with the worker that ran it
            result = CliRunner().invoke(app, ["migrate", "src", "dst", "--strategy", "immediate", "--runner", "dask",
                                              "--dask-address", dask_cluster, "--chunk-rows", "300",
                                              "--config", str(cfg_path)])
            assert result.exit_code == 0, result.output
        ran = [(str(t["key"]), t["worker"]) for t in stream.data if "copy_chunk" in str(t["key"])]
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    chunks = control(cfg_path).chunks(control(cfg_path).runs(limit=1)[0].run_id)
    assert len(chunks) == 4 and all(c.done for c in chunks)
    assert len(ran) == len(chunks) and {w for _, w in ran} <= set(pids), ran  # on the cluster's workers only
    assert sum(executed.values()) >= len(chunks), executed
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert assert_same_records(src, dst, "items") == 1000
    assert control(cfg_path).pointer().provider == "dst"


def test_an_unreachable_dask_address_is_one_line_with_the_fix(tmp_path: Path) -> None:
    from shiftover.adapters.errors import ConfigInvalid, OrchestratorUnavailable
    from shiftover.flows.task_runners import task_runner
    from tests.fixtures_clusters import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(OrchestratorUnavailable, match="BACKEND_018.*no Dask scheduler answers at " + address):
        task_runner("dask", 2, address)
    path = write_config(tmp_path, {"a": {"kind": "memory", "role": "primary"}}, migration={"dask_address": "8786"})
    with pytest.raises(ConfigInvalid, match="BACKEND_002.*dask_address.*tcp://HOST:PORT"):
        config(path)

