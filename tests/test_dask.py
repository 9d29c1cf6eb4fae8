"""The same migrate flow with chunks mapped over a local 2-worker Dask cluster (prefect-dask) ends equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import open_adapter
from flows.migrate import MigrateParams, migrate
from tests.helpers import assert_same_records, config, write_config
from tests.test_bluegreen import control, seed_items

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_blue_green_on_dask_workers_ends_equal(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 4000)
    report = migrate(MigrateParams(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                                   chunk_rows=500, runner="dask", workers=2))
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

    from flows.cli import app

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 1000)
    result = CliRunner().invoke(app, ["migrate", "src", "dst", "--strategy", "immediate", "--runner", "dask",
                                      "--chunk-rows", "300", "--config", str(cfg_path)])
    assert result.exit_code == 0, result.output
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert assert_same_records(src, dst, "items") == 1000
    assert control(cfg_path).pointer().provider == "dst"
