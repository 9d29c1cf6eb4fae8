"""sync: through change capture by default (tests/test_sync_capture.py has the deletes); `sync.method: updated_at`
copies incrementally through changes(since), with watermarks and lag in the control store, any engine to any engine."""

from __future__ import annotations

import asyncio
import datetime as dt

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from shiftover.flows.sync import SyncParams, sync
from shiftover.tasks.sync import sync_pair
from tests.fixtures_clusters import write_config

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text"),
                                   Column("updated_at", "timestamp")), ("id",))


def test_updated_at_sync_copies_only_changes_and_records_watermarks_and_lag(pg_url, tmp_path):
    cfg = load_config(write_config(tmp_path, {
        "pg": {"kind": "postgresql", "url": pg_url, "role": "primary", "priority": 1},
        "lite": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'lite.db'}", "role": "standby", "priority": 2},
    }, sync={"method": "updated_at"}))
    control = ControlStore(cfg.control.url.get_secret_value())
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    with open_adapter(cfg, "pg") as pg:
        pg.create_collection(ITEMS)
        pg.upsert("items", [{"id": i, "v": "a", "updated_at": t0 + dt.timedelta(seconds=i % 7)}
                            for i in range(4500)])  # more than a page, many rows per timestamp
    first = sync_pair(cfg, control, "pg", "lite", overlap_s=0)
    assert first.created == ["items"] and first.rows == 4500
    assert sync_pair(cfg, control, "pg", "lite", overlap_s=0).rows == 0
    with open_adapter(cfg, "pg") as pg:
        pg.upsert("items", [{"id": i, "v": "b", "updated_at": t0 + dt.timedelta(minutes=1)} for i in (3, 4000)])
    second = sync_pair(cfg, control, "pg", "lite", overlap_s=0)
    assert second.rows == 2 and second.lag_s is not None and second.lag_s < 5
    with open_adapter(cfg, "lite") as lite:
        assert lite.count("items") == 4500 and lite.get("items", (4000,))["v"] == "b"
    [mark] = control.watermarks(source="pg", target="lite")
    assert mark.watermark == t0 + dt.timedelta(minutes=1) and mark.rows == 4502


def test_sync_flow_syncs_every_standby_and_publishes_a_table(prefect_harness, tmp_path):
    path = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "s1": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's1.db'}", "role": "standby", "priority": 2},
        "s2": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's2.db'}", "role": "standby", "priority": 3},
        "other": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'o.db'}", "role": "none"},
    })
    cfg = load_config(path)
    with open_adapter(cfg, "main") as main:
        main.create_collection(ITEMS)
        main.upsert("items", [{"id": i, "v": "x", "updated_at": dt.datetime.now(dt.timezone.utc)} for i in range(30)])
    results = {r.target: r for r in sync(SyncParams(config_path=str(path)))}
    assert set(results) == {"s1", "s2"} and all(r.rows == 30 for r in results.values())
    control = ControlStore(cfg.control.url.get_secret_value())
    assert control.lag_s("main", "s1") is not None and control.lag_s("main", "other") is None

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sync"])),
                                               sort=ArtifactSort.CREATED_DESC)  # other tests publish "sync" too

    table = asyncio.run(read())[0].data
    table = table if isinstance(table, list) else __import__("json").loads(table)
    assert {r["target"]: r["rows copied"] for r in table} == {"s1": 30, "s2": 30}


def test_sync_json_gives_numbers_and_nulls(prefect_harness, tmp_path):
    """`shiftover sync --json`: counts as JSON numbers per collection, no lag as null (the terminal shows words)."""
    import json
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    path = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "s1": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's1.db'}", "role": "standby", "priority": 2},
    })
    with open_adapter(load_config(path), "main") as main:
        main.create_collection(ITEMS)
        main.upsert("items", [{"id": i, "v": "x", "updated_at": dt.datetime.now(dt.timezone.utc)} for i in range(7)])
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "80"}  # the harness's API
    done = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "sync", "--json", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [result] = json.loads(done.stdout)
    assert (result["source"], result["target"], result["rows"]) == ("main", "s1", 7)
    assert all(isinstance(v, int) for v in {**result["collections"], **result["copied"]}.values())
    assert result["lag_s"] is None or isinstance(result["lag_s"], float)
