"""Sync through change capture: inserts, updates and deletes reach the standby on tables without updated_at; the
standby starts from a full copy; failover refuses a standby not known to be in sync and never resurrects a deleted
record; a primary that cannot show deletes is refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.errors import StandbyNotInSync
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.cli.main import app
from shiftover.control.store import ControlStore
from shiftover.control.syncstate import SyncStates
from shiftover.flows.failover import FailoverParams, failover
from shiftover.flows.sync import SyncParams, sync
from shiftover.tasks.sync import sync_pair
from tests.helpers import all_records, assert_same_records, config, write_config
from tests.test_bluegreen import ITEMS, seed_items


def _write(adapter, start: int) -> set[int]:  # type: ignore[no-untyped-def]
    """100 inserts, 50 updates and 100 deletes, none of them touching an updated_at column (there is none)."""
    adapter.upsert("items", [{"id": i, "name": f"new {i}", "qty": 1, "price": Decimal("2.50"), "tags": ["n"]}
                             for i in range(start, start + 100)])
    adapter.upsert("items", [{"id": i, "name": f"updated {i}", "qty": 999, "price": Decimal("9.99"),
                              "tags": {"u": True}} for i in range(1, 51)])
    gone = set(range(1001, 1101))
    adapter.delete("items", [(i,) for i in sorted(gone)])
    return gone


def test_sync_replicates_inserts_updates_and_deletes_without_updated_at(pg_url, pg_url2, tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "pg": {"kind": "postgresql", "url": pg_url, "role": "primary", "priority": 1},
        "pg2": {"kind": "postgresql", "url": pg_url2, "role": "standby", "priority": 2},
        "lite": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'lite.db'}", "role": "standby", "priority": 3},
    })
    cfg = config(path)
    store = ControlStore(cfg.control.url.get_secret_value())
    seed_items(path, "pg", 3000)
    assert "updated_at" not in ITEMS.names
    with open_adapter(cfg, "pg2") as pg2:  # a standby that already holds stale and extra rows
        pg2.create_collection(ITEMS)
        pg2.upsert("items", [{"id": i, "name": "stale", "qty": 0, "price": Decimal("0"), "tags": None}
                             for i in (5, 7, 50_000)])
    for target in ("pg2", "lite"):
        first = sync_pair(cfg, store, "pg", target)
        assert first.method == "capture" and first.copied == {"items": 3000}
    with open_adapter(cfg, "pg") as pg:
        assert pg.capturing() == ["items"]
        gone = _write(pg, 10_000)
    second = sync_pair(cfg, store, "pg", "pg2")
    # pg2's pass acknowledged the changes, and lite was not in it: lite is stale and copied in full again
    assert second.copied == {} and second.deleted == 100
    [lite_state] = SyncStates(store).get(source="pg", target="lite")
    assert lite_state.state == "stale" and "did not include 'lite'" in (lite_state.note or "")
    assert SyncStates(store).readiness("pg", "lite") is not None
    again = sync_pair(cfg, store, "pg", "lite")
    assert again.copied == {"items": 3000}
    with open_adapter(cfg, "pg") as pg, open_adapter(cfg, "pg2") as pg2, open_adapter(cfg, "lite") as lite:
        for standby in (pg2, lite):
            assert assert_same_records(pg, standby, "items") == 3000  # 3000 + 100 new - 100 deleted
            held = {r["id"] for r in all_records(standby, "items")}
            assert not held & gone and 50_000 not in held
            assert standby.get("items", (7,))["name"] != "stale"
    for state in SyncStates(store).get(source="pg"):
        assert state.state == "live" and state.completed_at is not None and state.pending == 0
    assert SyncStates(store).readiness("pg", "pg2") is None and SyncStates(store).readiness("pg", "lite") is None


def test_sync_flow_writes_every_live_standby_and_a_stopped_capture_means_a_full_copy(
        prefect_harness, tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "s1": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's1.db'}", "role": "standby", "priority": 2},
        "s2": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's2.db'}", "role": "standby", "priority": 3},
    })
    cfg = config(path)
    seed_items(path, "main", 1200)
    results = {r.target: r for r in sync(SyncParams(config_path=str(path)))}
    assert {t: r.copied for t, r in results.items()} == {"s1": {"items": 1200}, "s2": {"items": 1200}}
    with open_adapter(cfg, "main") as main:
        gone = _write(main, 5000)
    # Asked for s1 only, the pass also writes s2: it acknowledges the changes, so every live standby gets them.
    results = {r.target: r for r in sync(SyncParams(config_path=str(path), targets=["s1"]))}
    assert set(results) == {"s1", "s2"} and all(r.deleted == 100 and not r.copied for r in results.values())
    with open_adapter(cfg, "main") as main:
        main.capture_stop(["items"])  # e.g. a release or another run stopped it: changes may have been missed
        main.delete("items", [(1,)])
    results = {r.target: r for r in sync(SyncParams(config_path=str(path)))}
    assert all(r.copied == {"items": 1199} for r in results.values())
    with open_adapter(cfg, "main") as main, open_adapter(cfg, "s1") as s1, open_adapter(cfg, "s2") as s2:
        for standby in (s1, s2):
            assert assert_same_records(main, standby, "items") == 1199
            assert not {r["id"] for r in all_records(standby, "items")} & (gone | {1})


def test_failover_after_deletes_resurrects_nothing(prefect_harness, pg_url, pg_url2, tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "primary": {"kind": "postgresql", "url": pg_url, "role": "primary", "priority": 1},
        "standby": {"kind": "postgresql", "url": pg_url2, "role": "standby", "priority": 2},
    })
    cfg = config(path)
    seed_items(path, "primary", 1000)
    sync(SyncParams(config_path=str(path)))
    with open_adapter(cfg, "primary") as p:
        deleted = [(i,) for i in range(200, 300)]
        p.delete("items", deleted)
    sync(SyncParams(config_path=str(path)))
    with open_adapter(cfg, "primary") as p:
        remaining = {r["id"] for r in all_records(p, "items")}
    run = CliRunner().invoke(app, ["failover", "--to", "standby", "--json", "--config", str(path)])
    assert run.exit_code == 0, run.output
    store = ControlStore(cfg.control.url.get_secret_value())
    assert store.pointer().provider == "standby"
    with open_adapter(cfg, "standby") as s:
        held = {r["id"] for r in all_records(s, "items")}
    assert held == remaining and len(held) == 900 and not held & set(range(200, 300))


@pytest.fixture
def memory_pair(tmp_path: Path):  # type: ignore[no-untyped-def]
    names = {"a": f"sync-a-{tmp_path.name}", "b": f"sync-b-{tmp_path.name}"}
    path = write_config(tmp_path, {
        "a": {"kind": "memory", "url": f"memory://{names['a']}", "role": "primary", "priority": 1},
        "b": {"kind": "memory", "url": f"memory://{names['b']}", "role": "standby", "priority": 2},
    }, health={"timeout_s": 0.5})
    cfg = config(path)
    schema = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text")), ("id",))
    with open_adapter(cfg, "a") as a, open_adapter(cfg, "b") as b:
        a.create_collection(schema)
        b.create_collection(schema)
        a.upsert("items", [{"id": i, "v": f"v{i}"} for i in range(1000)])
    yield cfg, names
    MemoryAdapter.store(names["a"]).down = False


def test_failover_to_a_standby_never_synced_refuses_unless_forced(prefect_harness, memory_pair) -> None:
    cfg, names = memory_pair
    store = ControlStore(cfg.control.url.get_secret_value())
    store.ensure_pointer("a")
    MemoryAdapter.store(names["a"]).down = True  # the primary is gone: no final delta can save b
    run = CliRunner().invoke(app, ["failover", "--to", "b", "--config", str(cfg.path)])
    assert run.exit_code != 0 and isinstance(run.exception, StandbyNotInSync)
    message = str(run.exception)
    assert message.startswith("BACKEND_017 [b]: will not switch to 'b'") and "never completed a sync" in message
    assert "--force" in message
    assert store.pointer().provider == "a" and store.pointer().epoch == 1 and store.fences() == []
    # automatic failover skips it too: no standby in sync, no switch
    with pytest.raises(StandbyNotInSync):
        failover(FailoverParams(config_path=str(cfg.path), reason="automatic test", expected_epoch=1))
    assert store.pointer().epoch == 1
    run = CliRunner().invoke(app, ["failover", "--to", "b", "--force", "--json", "--config", str(cfg.path)])
    assert run.exit_code == 0, run.output
    assert '"status":"switched"' in run.stdout.replace(" ", "") and "forced: " in run.stdout
    assert store.pointer().provider == "b"


def test_failover_to_an_unsynced_standby_copies_it_in_full_while_the_primary_answers(
        prefect_harness, memory_pair) -> None:
    cfg, _ = memory_pair
    store = ControlStore(cfg.control.url.get_secret_value())
    store.ensure_pointer("a")
    report = failover(FailoverParams(config_path=str(cfg.path), to="b"))
    assert report.status == "switched" and report.engine_fenced and report.records_at_risk == 0
    with open_adapter(cfg, "a") as a, open_adapter(cfg, "b") as b:
        assert assert_same_records(a, b, "items") == 1000  # not 0 of 1,000


def test_a_document_store_primary_is_refused_unless_updated_at_is_chosen(mongo_target, tmp_path: Path) -> None:
    providers = {
        "docs": {"kind": "mongodb", "url": mongo_target.url, "role": "primary", "priority": 1},
        "lite": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'lite.db'}", "role": "standby", "priority": 2},
    }
    cfg = config(write_config(tmp_path, providers))
    store = ControlStore(cfg.control.url.get_secret_value())
    schema = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text")), ("id",))
    with open_adapter(cfg, "docs") as docs:
        docs.create_collection(schema)
        docs.upsert("items", [{"id": i, "v": "x"} for i in range(20)])
    with pytest.raises(StandbyNotInSync, match="cannot see deleted records.*sync.method: updated_at"):
        sync_pair(cfg, store, "docs", "lite")
    assert SyncStates(store).readiness("docs", "lite") is not None
    cfg = config(write_config(tmp_path, providers, sync={"method": "updated_at"}))
    assert sync_pair(cfg, store, "docs", "lite").rows == 20


def test_sync_reads_without_consuming_a_log_an_unfinished_live_migration_needs(tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary", "priority": 1},
        "s1": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 's1.db'}", "role": "standby", "priority": 2},
    })
    cfg = config(path)
    store = ControlStore(cfg.control.url.get_secret_value())
    seed_items(path, "main", 300)
    sync_pair(cfg, store, "main", "s1")
    store.start_run("g1", kind="migrate", source="main", target="elsewhere", strategy="gradual", fingerprint="g")
    with open_adapter(cfg, "main") as main:
        main.delete("items", [(i,) for i in range(1, 11)])
    result = sync_pair(cfg, store, "main", "s1")
    assert result.deleted == 10 and "run g1 still needs the change log" in result.notes[0]
    with open_adapter(cfg, "main") as main, open_adapter(cfg, "s1") as s1:
        assert main.capture_pending("items") == 10  # left for the migration to apply
        assert assert_same_records(main, s1, "items") == 290
    store.finish_run("g1", status="succeeded", summary={})
    assert sync_pair(cfg, store, "main", "s1").notes == []
    with open_adapter(cfg, "main") as main:
        assert main.capture_pending("items") == 0
