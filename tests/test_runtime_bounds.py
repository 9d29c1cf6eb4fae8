"""A bounded runtime: debounced health states, probe timeouts counted from the probe's own start, no sync into the
target of a running migration, deployments that run one run at a time."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest

import shiftover.tasks.health as health_tasks
from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from tests.fixtures_clusters import write_config

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text"),
                                   Column("updated_at", "timestamp")), ("id",))


def test_the_debounce_holds_a_state_through_one_failed_probe(prefect_harness, tmp_path):
    from shiftover.flows.health_sweep import HealthSweepParams, health_sweep

    MemoryAdapter.store("db")
    path = write_config(tmp_path, {"db": {"kind": "memory", "url": "memory://db", "role": "primary"}},
                        health={"timeout_s": 1, "error_rate": 0.5, "availability": 0.5})  # debounce: default 2
    control = ControlStore(load_config(path).control.url.get_secret_value())

    def sweep():
        [h] = health_sweep(HealthSweepParams(config_path=str(path)))
        return h

    assert sweep().status == "healthy"
    MemoryAdapter.store("db").down = True
    blip = sweep()
    assert (blip.status, blip.ok, blip.observed, blip.pending) == ("healthy", False, "down", 1)
    assert control.health_state("db") == "healthy" and blip.row()["pending"] == "down 1/2"
    MemoryAdapter.store("db").down = False
    back = sweep()
    assert (back.status, back.previous, back.pending) == ("healthy", "healthy", 0)
    assert control.health_state("db") == "healthy"  # never reported down for one failed probe

    MemoryAdapter.store("db").down = True  # two sweeps in a row agree: now it is down
    assert sweep().status == "healthy"
    down = sweep()
    assert (down.status, down.previous) == ("down", "healthy") and control.health_state("db") == "down"


def test_a_probe_timeout_counts_from_the_probe_start_not_from_opening(monkeypatch, tmp_path):
    MemoryAdapter.store("db")
    cfg = load_config(write_config(tmp_path, {"db": {"kind": "memory", "url": "memory://db", "role": "primary"},
                                              "slow": {"kind": "memory", "url": "memory://slow", "role": "standby",
                                                       "options": {"latency_ms": 900}}}))
    real_open = health_tasks.open_adapter

    def slow_open(config, name):  # a driver import and adapter set-up on a busy machine
        time.sleep(1.0)
        return real_open(config, name)

    monkeypatch.setattr(health_tasks, "open_adapter", slow_open)
    start = time.monotonic()
    ok = health_tasks.probe_with_timeout(cfg, "db", timeout_s=0.5, canary=False)
    assert ok.ok and ok.latency_ms < 500, ok  # 1 s of opening did not count against the 0.5 s
    assert time.monotonic() - start >= 1.0
    late = health_tasks.probe_with_timeout(cfg, "slow", timeout_s=0.5, canary=False)
    assert not late.ok and "BACKEND_005" in late.error  # the probe itself still must answer within 0.5 s


def test_sync_never_writes_into_the_target_of_a_running_migration(prefect_harness, tmp_path):
    from shiftover.flows.sync import SyncParams, sync

    path = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "s1": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's1.db'}", "role": "standby", "priority": 2},
        "s2": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's2.db'}", "role": "standby", "priority": 3},
    })
    cfg = load_config(path)
    with open_adapter(cfg, "main") as main:
        main.create_collection(ITEMS)
        main.upsert("items", [{"id": i, "v": "x", "updated_at": dt.datetime.now(dt.timezone.utc)} for i in range(40)])
    control = ControlStore(cfg.control.url.get_secret_value())
    control.start_run("run-into-s1", kind="migrate", source="main", target="s1", strategy="gradual", fingerprint="f")
    assert control.running_migrations() == {"s1": "run-into-s1"}

    results = {r.target: r for r in sync(SyncParams(config_path=str(path)))}
    assert set(results) == {"s2"} and results["s2"].rows == 40
    with open_adapter(cfg, "s1") as s1:
        assert "items" not in s1.collections()  # not a single write
    assert control.lag_s("main", "s1") is None

    control.finish_run("run-into-s1", status="succeeded", summary={})
    results = {r.target: r for r in sync(SyncParams(config_path=str(path)))}
    assert results["s1"].rows == 40
    with open_adapter(cfg, "s1") as s1:
        assert s1.count("items") == 40


@pytest.mark.parametrize("name, strategy", [("health-sweep", "CANCEL_NEW"), ("sync", "CANCEL_NEW"),
                                            ("failover", "CANCEL_NEW"), ("migrate", "ENQUEUE"),
                                            ("full-test-suite", "ENQUEUE"), ("analyze-codebase", "ENQUEUE")])
def test_every_served_deployment_runs_one_run_at_a_time(tmp_path, name, strategy):
    from shiftover.deployments.catalogue import build_deployments

    path = write_config(tmp_path, {"db": {"kind": "memory", "url": "memory://db", "role": "primary"}})
    deployment = {d.name: d for d in build_deployments(path)}[name]
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy.value == strategy


def test_the_monitor_switches_first_and_records_the_flow_run_after(prefect_harness, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from shiftover.service.process import Monitor

    path, control = _primary_and_standby(tmp_path, failures=2)
    _synced(path, control)

    async def failover_runs() -> list:
        async with get_client() as client:
            return await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["failover"])))

    before = {r.id for r in asyncio.run(failover_runs())}
    monitor = Monitor(str(path))
    MemoryAdapter.store("a").down = True
    assert monitor.tick() is None
    report = monitor.tick()
    switched = control.pointer()  # the switch is done when tick() returns: no flow run was needed for it
    assert report.status == "switched" and (switched.provider, switched.epoch) == ("b", 2)
    assert report.detect_to_switch_s is not None and report.detect_to_switch_s > 0

    deadline = time.monotonic() + 120
    while True:  # then the run that records it, with its artifact
        new = [r for r in asyncio.run(failover_runs()) if r.id not in before and r.state and r.state.is_final()]
        if new or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(new) == 1 and new[0].state.is_completed(), new
    assert new[0].start_time > switched.since  # bookkeeping after the switch
    assert new[0].parameters["params"]["decided"]["status"] == "switched"
    assert [p.epoch for p in control.history()] == [2, 1]  # recording did not switch again


def _synced(path, control) -> None:
    """b has completed a sync from a: automatic failover never switches to a standby not known to be in sync."""
    from shiftover.tasks.sync import sync_pair

    cfg = load_config(path)
    for name in ("a", "b"):
        with open_adapter(cfg, name) as ad:
            ad.create_collection(ITEMS)
    sync_pair(cfg, control, "a", "b")


def test_the_monitor_takes_the_flows_steps_and_refuses_a_standby_never_synced(tmp_path):
    """The monitor's switch is the flow's `fail_over`: no blind switch (BACKEND_017), nothing fenced, no flow run."""
    from shiftover.adapters.errors import StandbyNotInSync
    from shiftover.service.process import Monitor

    path, control = _primary_and_standby(tmp_path, failures=1)
    recorded: list = []
    monitor = Monitor(str(path))
    monitor.run_failover = lambda **values: recorded.append(values) or _fail_over_plain(values)
    MemoryAdapter.store("a").down = True
    with pytest.raises(StandbyNotInSync, match="BACKEND_017"):
        monitor.tick()
    assert (control.pointer().provider, control.pointer().epoch) == ("a", 1)
    assert control.fences() == [] and control.freezes("a") == []
    MemoryAdapter.store("a").down = False
    _synced(path, control)
    MemoryAdapter.store("a").down = True
    report = monitor.tick()
    assert report.status == "switched" and control.pointer().provider == "b" and len(recorded) == 2


def _primary_and_standby(tmp_path, *, failures: int):  # noqa: ANN001, ANN202
    """Memory providers a (primary, the pointer's) and b (standby), failing over after `failures` probes."""
    for name in ("a", "b"):
        MemoryAdapter.store(name)
    path = write_config(tmp_path, {"a": {"kind": "memory", "url": "memory://a", "role": "primary", "priority": 1},
                                   "b": {"kind": "memory", "url": "memory://b", "role": "standby", "priority": 2}},
                        health={"timeout_s": 0.5}, failover={"consecutive_failures": failures, "cooldown_s": 0})
    control = ControlStore(load_config(path).control.url.get_secret_value())
    control.ensure_pointer("a")
    return path, control


def _fail_over_plain(values: dict):
    from shiftover.flows.failover import TASKS, FailoverParams, fail_over

    return fail_over(FailoverParams(**values), TASKS.plain())


def test_the_monitor_says_a_refusal_it_keeps_meeting_once(caplog) -> None:
    from shiftover.adapters.errors import StandbyNotInSync
    from shiftover.service.process import Monitor

    refused = StandbyNotInSync("no standby is in sync with 'a'", provider="a", hint="run shiftover sync")
    stop, calls = threading.Event(), []

    def step() -> None:
        calls.append(1)
        if len(calls) == 6:
            stop.set()
        raise refused if len(calls) != 3 else RuntimeError("a bug")

    with caplog.at_level(logging.WARNING, logger="shiftover.serve"):
        Monitor._loop(object.__new__(Monitor), step, lambda: 0.0, stop)
    said = [r for r in caplog.records if "BACKEND_017" in r.getMessage()]
    assert len(calls) == 6 and len(said) == 1 and "retried at every probe" in said[0].getMessage()
    assert [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]  # anything else: a traceback
