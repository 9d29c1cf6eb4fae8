"""kill -9 of a blue-green migration at several points, then a re-run: equal, no duplicates, pointer consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from tests.conftest import ROOT
from tests.helpers import all_records, assert_same_records, config, write_config
from tests.test_bluegreen import assert_model, control, seed_items

pytestmark = pytest.mark.usefixtures("prefect_harness")

SCRIPT = """
import sys
from shiftover.flows.migrate import migrate
migrate(source="src", target="dst", strategy="blue_green", config_path=sys.argv[1], chunk_rows=300,
        batch_size=100, workers=2)
"""


def _start_and_kill(cfg_path: Path, tmp_path: Path, point: str) -> None:
    from prefect.settings import PREFECT_API_URL

    marker = tmp_path / f"paused-{point}"
    env = dict(os.environ, SHIFTOVER_TEST_PAUSE_AT=point, SHIFTOVER_TEST_PAUSE_FILE=str(marker),
               PREFECT_API_URL=str(PREFECT_API_URL.value()), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cfg_path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the migration ended before {point}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def _write(adapter, model, start: int) -> None:  # type: ignore[no-untyped-def]
    """Writes while no migration runs: an insert, an update and a delete, recorded in the model."""
    new = {"id": start, "name": "written between runs", "qty": 3, "price": Decimal("3.30"), "tags": {"k": 1}}
    adapter.upsert("items", [new])
    model[start] = new
    first = min(model)
    model[first] = dict(model[first], name="updated between runs")
    adapter.upsert("items", [model[first]])
    gone = sorted(model)[len(model) // 2]
    adapter.delete("items", [(gone,)])
    del model[gone]


@pytest.mark.parametrize("point", ["copy", "catchup", "frozen", "switched"])
def test_kill_9_then_rerun_resumes_and_ends_equal(tmp_path: Path, pg_url: str, pg_url2: str, point: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    model = seed_items(cfg_path, "src", 2400)
    _start_and_kill(cfg_path, tmp_path, point)
    store = control(cfg_path)
    killed = store.runs(limit=1)[0]
    assert killed.status == "running" and killed.strategy == "blue_green"
    cfg = config(cfg_path)
    if point == "copy":
        assert 0 < sum(c.done for c in store.chunks(killed.run_id)) < len(store.chunks(killed.run_id))
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        if point == "switched":
            assert store.pointer().provider == "dst"  # the switch happened; the app now writes on green
            _write(dst, model, 90_000)
        else:
            assert store.pointer().provider == "src" and src.capturing() == ["items"]
            if point == "frozen":  # the crash left the engine freeze: the app is refused until the re-run lifts it
                assert src.frozen() == ["items"]
            else:
                _write(src, model, 90_000)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=300, batch_size=100)
    assert report.status == "switched", report.error
    assert report.run_id == killed.run_id  # the same run resumed
    if point == "frozen":
        assert "lifted the write freeze a crashed attempt of this run left on the source" in report.notes
    pointer = store.pointer()
    assert (pointer.provider, pointer.epoch) == ("dst", 2)
    assert [h.epoch for h in store.history()] == [2, 1]
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_model(dst, model)
        keys = [r["id"] for r in all_records(dst, "items")]
        assert len(keys) == len(set(keys)) == dst.count("items")
        if point != "switched":
            assert assert_same_records(src, dst, "items") == len(model)
        assert src.frozen() == ["items"] and src.capturing() == [] and dst.capturing() == ["items"]
    assert store.runs(limit=1)[0].status == "succeeded"


def test_postgres_restart_during_catch_up_is_absorbed_by_retries(tmp_path: Path, pg_pair,  # type: ignore
                                                                  monkeypatch) -> None:
    """The source server is killed -9 while the run waits between catch-up passes and comes back 4 s later: the
    next task fails with a transient error, is retried, and the run ends equal."""
    import contextvars
    import threading

    blue, green = pg_pair
    blue.reset()
    green.reset()
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": blue.url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": green.url}})
    seed_items(cfg_path, "src", 1200)
    marker = tmp_path / "paused"
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_AT", "catchup")
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_FILE", str(marker))
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_S", "1")
    box: dict = {}
    ctx = contextvars.copy_context()
    params = dict(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path))
    thread = threading.Thread(target=lambda: box.setdefault("report", ctx.run(migrate, **params)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline and thread.is_alive(), "never reached the catch-up"
        time.sleep(0.05)
    blue.kill9()
    time.sleep(4)
    blue.start()
    thread.join(180)
    assert box["report"].status == "switched", box["report"].error
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert assert_same_records(src, dst, "items") == 1200
    assert _max_run_count(str(cfg_path)) > 1  # some task really failed against the dead server and was retried


def _max_run_count(cfg: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    with get_client(sync_client=True) as client:
        flows = [f for f in client.read_flow_runs(limit=200)
                 if f.parameters.get("config_path") == cfg]
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [f.id for f in flows]}), limit=200)
    return max(r.run_count for r in runs)
