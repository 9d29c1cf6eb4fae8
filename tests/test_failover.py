"""Failover on real PostgreSQL clusters that the tests stop and kill: detection, fencing, the router following,
stale-epoch refusal, no takeover by a returning old primary, PostgreSQL → SQLite, and two racing monitors."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import StaleEpoch
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.router import Backend
from shiftover.control.store import ControlStore
from shiftover.flows.failover import FailoverParams, failover, render
from shiftover.service.process import Monitor
from shiftover.tasks.sync import sync_pair
from tests.fixtures_clusters import write_config

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text"),
                                   Column("updated_at", "timestamp")), ("id",))
POLICY = {"consecutive_failures": 3, "monitor_interval_s": 0.3, "cooldown_s": 60, "router_follow_s": 0.5}


def rec(i: int, v: str = "x") -> dict:
    return {"id": i, "v": v, "updated_at": dt.datetime.now(dt.timezone.utc)}


def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s")


@pytest.fixture
def pg_setup(pg_pair, tmp_path):
    a, b = pg_pair
    a.reset()
    b.reset()
    path = write_config(tmp_path, {
        "primary": {"kind": "postgresql", "url": a.url, "role": "primary", "priority": 1,
                    "options": {"connect_timeout_s": 1}},
        "replica": {"kind": "postgresql", "url": b.url, "role": "standby", "priority": 2,
                    "options": {"connect_timeout_s": 1}},
    }, health={"timeout_s": 1.0}, failover=POLICY)
    cfg = load_config(path)
    with open_adapter(cfg, "primary") as p:
        p.create_collection(ITEMS)
    return cfg, a, b


def replica_ids(cluster) -> set[int]:
    return {r[0] for r in cluster.execute("SELECT id FROM items")}


def run_monitor(cfg):
    monitor, stop = Monitor(str(cfg.path)), threading.Event()
    monitor.start(stop)
    return monitor, stop


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_primary_loss_fails_over_fences_and_the_router_follows(prefect_harness, pg_setup, how):
    cfg, a, b = pg_setup
    control = ControlStore(cfg.control.url.get_secret_value())
    with Backend(cfg) as backend:
        backend.upsert("items", [rec(i) for i in range(50)])
        sync_pair(cfg, control, "primary", "replica")
        backend.upsert("items", [rec(i) for i in range(50, 60)])  # acknowledged but never synced: at risk
    monitor, stop = run_monitor(cfg)
    try:
        time.sleep(0.7)
        lost_at = time.monotonic()
        a.stop() if how == "stop" else a.kill9()
        wait_for(lambda: control.pointer().provider == "replica", timeout=15)
        took = time.monotonic() - lost_at
        bound = POLICY["consecutive_failures"] * POLICY["monitor_interval_s"] + cfg.health.timeout_s + 4
        assert took < bound, f"switched after {took:.1f} s, bound {bound:.1f} s"
        pointer = control.pointer()
        assert pointer.epoch == 2 and "automatic" in pointer.reason
        report = wait_for(lambda: monitor.failovers and monitor.failovers[0], timeout=5)
        assert report.status == "switched" and report.engine_fenced is False and report.records_at_risk is None
        assert 0 < report.detect_to_switch_s < bound
        assert [f.provider for f in control.fences()] == ["primary"]

        with Backend(cfg) as backend:  # the router follows: writes land on the replica
            backend.upsert("items", [rec(100, "after")])
            assert backend.active == "replica"
        assert replica_ids(b) == set(range(50)) | {100}
        with Backend(cfg, epoch=1) as holder, pytest.raises(StaleEpoch):
            holder.upsert("items", [rec(101, "stale")])

        a.start()  # the old primary comes back: fenced in its engine, and it does not take over
        wait_for(lambda: control.fences()[0].engine_fenced, timeout=10)
        with pytest.raises(psycopg.Error, match="BACKEND_010"):
            a.execute("INSERT INTO items (id, v) VALUES (200, 'direct write to the old primary')")
        time.sleep(1.5)
        assert control.pointer().provider == "replica" and control.pointer().epoch == 2
        assert len(monitor.failovers) == 1
    finally:
        stop.set()


def test_postgresql_primary_fails_over_to_a_sqlite_standby(prefect_harness, pg_pair, tmp_path):
    a, _ = pg_pair
    a.reset()
    path = write_config(tmp_path, {
        "primary": {"kind": "postgresql", "url": a.url, "role": "primary", "priority": 1},
        "local": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'standby.db'}", "role": "standby", "priority": 9},
    }, failover=POLICY)
    cfg = load_config(path)
    control = ControlStore(cfg.control.url.get_secret_value())
    with open_adapter(cfg, "primary") as p:
        p.create_collection(ITEMS)
    with Backend(cfg) as backend:
        backend.upsert("items", [rec(i, f"v{i}") for i in range(40)])
        first = sync_pair(cfg, control, "primary", "local")
        assert first.created == ["items"] and first.rows == 40
        backend.upsert("items", [rec(i, f"late{i}") for i in range(35, 45)])  # the last delta, never synced

    report = failover(FailoverParams(config_path=str(path), reason="planned move to the local copy"))
    assert report.status == "switched" and report.new == "local" and report.epoch_after == 2
    assert report.engine_fenced is True and report.synced_rows >= 10 and report.records_at_risk == 0
    with Backend(cfg) as backend:
        assert backend.active == "local" and backend.count("items") == 45
        assert backend.get("items", (44,))["v"] == "late44"
        backend.upsert("items", [rec(46, "on sqlite")])
    with open_adapter(cfg, "primary") as p:
        assert p.frozen() == ["items"]


@pytest.fixture
def memory_config(tmp_path):
    def make(**failover_policy):
        path = write_config(tmp_path, {
            "a": {"kind": "memory", "url": "memory://a", "role": "primary", "priority": 1},
            "b": {"kind": "memory", "url": "memory://b", "role": "standby", "priority": 2},
        }, health={"timeout_s": 0.5}, failover={**POLICY, **failover_policy})
        cfg = load_config(path)
        for name in ("a", "b"):
            with open_adapter(cfg, name) as ad:
                ad.create_collection(ITEMS)
        # b has completed a sync from a: failover does not switch blindly to a standby never synced
        sync_pair(cfg, ControlStore(cfg.control.url.get_secret_value()), "a", "b")
        return cfg
    return make


def test_two_monitors_racing_make_exactly_one_switch(prefect_harness, memory_config):
    cfg = memory_config()
    control = ControlStore(cfg.control.url.get_secret_value())
    control.ensure_pointer("a")
    monitors = [Monitor(str(cfg.path)), Monitor(str(cfg.path))]
    MemoryAdapter.store("a").down = True
    for m in monitors:  # two failed probes each: the third one decides
        assert m.tick() is None and m.tick() is None
    barrier = threading.Barrier(2)
    reports: list = []

    def third(m):
        barrier.wait()
        reports.append(m.tick())

    threads = [threading.Thread(target=third, args=(m,)) for m in monitors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 2
    # The loser either lost the compare-and-swap ("superseded") or, if the winner had already switched before its
    # probe, found the new active provider healthy and did nothing (None). Never a second switch.
    statuses = sorted(r.status if r is not None else "no action" for r in reports)
    assert statuses in (["superseded", "switched"], ["no action", "switched"])
    assert [p.epoch for p in control.history()] == [2, 1]
    assert control.pointer().provider == "b"


def test_after_a_failed_probe_the_monitor_probes_again_sooner_and_still_needs_three(prefect_harness, memory_config):
    cfg = memory_config(monitor_interval_s=1.0, retry_interval_s=0.1, cooldown_s=0)
    control = ControlStore(cfg.control.url.get_secret_value())
    control.ensure_pointer("a")
    monitor = Monitor(str(cfg.path))
    assert monitor.probe_interval() == 1.0
    monitor.policy.failures = 1
    assert monitor.probe_interval() == 0.1
    monitor.policy.failures = 3  # at the threshold (a refused failover, the cool-down): the full interval again
    assert monitor.probe_interval() == 1.0

    monitor, stop = run_monitor(cfg)
    try:
        time.sleep(0.3)  # after one good probe
        MemoryAdapter.store("a").down = True
        down_at = time.monotonic()
        wait_for(lambda: control.pointer().provider == "b", timeout=10)
        took = time.monotonic() - down_at
    finally:
        stop.set()
    failed = sorted(p.at for p in control.probes("a") if not p.ok)
    assert len(failed) == 3 and monitor.failovers[0].status == "switched"  # three in a row, then one switch
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(failed, failed[1:], strict=False)]
    assert all(0.09 <= g < 0.6 for g in gaps), gaps  # the 2nd and 3rd probe 0.1 s apart, not 1 s
    assert took < 2.0, f"switched {took:.2f} s after the loss: the old pacing needs at least 2 s"
    report = monitor.failovers[0]  # where the switch's time went, step by step, also in the artifact
    assert {"plan", "lease", "fence", "unfence_target", "switch"} <= set(report.step_s)
    assert 0 < sum(report.step_s.values()) <= report.flow_s
    assert f"(plan {report.step_s['plan']:.2f} s, lease " in render(report)
    assert f", switch {report.step_s['switch']:.2f} s)" in render(report)


def test_failback_is_manual_by_default_and_automatic_only_after_a_stable_period(prefect_harness, memory_config):
    cfg = memory_config(cooldown_s=0, failback="manual")
    control = ControlStore(cfg.control.url.get_secret_value())
    control.ensure_pointer("a")
    assert failover(FailoverParams(config_path=str(cfg.path), to="b")).status == "switched"
    monitor = Monitor(str(cfg.path))
    for _ in range(2):
        monitor.warden_tick()
    assert control.pointer().provider == "b"  # a answers, but failback is manual

    cfg = memory_config(cooldown_s=0, failback="automatic", failback_stable_s=0.4)
    monitor = Monitor(str(cfg.path))
    assert monitor.warden_tick() is None  # a is stable since now: not yet
    MemoryAdapter.store("a").down = True
    assert monitor.warden_tick() is None  # a flaps: the stable period starts again
    MemoryAdapter.store("a").down = False
    assert monitor.warden_tick() is None
    time.sleep(0.5)
    report = monitor.warden_tick()
    assert report.status == "switched" and report.new == "a" and report.unfenced_target
    assert control.pointer().provider == "a" and control.pointer().epoch == 3
    with open_adapter(cfg, "a") as ad:
        assert ad.frozen() == []
        ad.upsert("items", [rec(1)])  # the former primary takes writes again
    assert [f.provider for f in control.fences()] == ["b"]


def test_failover_dry_run_and_to_from_the_command_line(prefect_harness, memory_config):
    import json

    from typer.testing import CliRunner

    from shiftover.cli.main import app

    cfg = memory_config()
    control = ControlStore(cfg.control.url.get_secret_value())
    run = CliRunner().invoke(app, ["failover", "--dry-run", "--json", "--config", str(cfg.path)])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["status"] == "dry-run" and json.loads(run.stdout)["new"] == "b"
    assert control.pointer().epoch == 1 and control.fences() == []
    run = CliRunner().invoke(app, ["failover", "--to", "b", "--json", "--config", str(cfg.path)])
    assert json.loads(run.stdout)["status"] == "switched"
    assert control.pointer().provider == "b" and control.pointer().epoch == 2
