"""Blue-green migrations while a writer keeps inserting, updating and deleting; change capture per engine."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.errors import BackendError, InvalidRequest, WriteFrozen
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from shiftover.flows.migrate import migrate
from shiftover.tasks.reporting import render_markdown
from tests.helpers import assert_same_records, config, write_config
from tests.helpers import newest_artifact as _artifact

ITEMS = CollectionSchema("items", (
    Column("id", "integer", False), Column("name", "text"), Column("qty", "integer"),
    Column("price", "decimal", True, 12, 2), Column("tags", "json"),
), ("id",))
SEED = 3000


def seed_items(cfg_path: Path, provider: str, n: int = SEED) -> dict[int, dict[str, Any]]:
    rows = {i: {"id": i, "name": f"item {i} — ü", "qty": i % 17, "price": Decimal(f"{i}.{i % 100:02d}"),
                "tags": {"i": i, "even": i % 2 == 0}} for i in range(1, n + 1)}
    with open_adapter(config(cfg_path), provider) as a:
        a.create_collection(ITEMS)
        batch = list(rows.values())
        for start in range(0, len(batch), 1000):
            a.upsert("items", batch[start:start + 1000])
    return rows


def control(cfg_path: Path) -> ControlStore:
    return ControlStore(config(cfg_path).control.url.get_secret_value())


class Writer(threading.Thread):
    """Inserts, updates and deletes at random; keeps the model of every acknowledged write."""

    def __init__(self, model: dict[int, dict[str, Any]], write, delete, *,  # type: ignore[no-untyped-def]
                 stop_on_frozen: bool,
                 pause_s: float = 0.004) -> None:
        super().__init__(daemon=True)
        self.pause_s = pause_s
        self.model, self.write, self.remove = model, write, delete
        self.stop_on_frozen = stop_on_frozen
        self.stop = threading.Event()
        self.acked = 0
        self.refused = 0
        self.next_id = max(model) + 1
        self.rng = random.Random(5)

    def run(self) -> None:
        while not self.stop.is_set():
            op = self.rng.random()
            try:
                if op < 0.4:
                    i = self.next_id
                    rec = {"id": i, "name": f"new {i}", "qty": 1, "price": Decimal("1.50"), "tags": ["n"]}
                    self.write(rec)
                    self.next_id += 1
                    self.model[i] = rec
                elif op < 0.8 and self.model:
                    i = self.rng.choice(list(self.model))
                    rec = dict(self.model[i], qty=self.rng.randrange(1000), name=f"upd {self.acked}")
                    self.write(rec)
                    self.model[i] = rec
                elif self.model:
                    i = self.rng.choice(list(self.model))
                    self.remove(i)
                    del self.model[i]
                self.acked += 1
            except (BackendError, psycopg.Error):
                self.refused += 1
                if self.stop_on_frozen and self.acked > 20:
                    return
                time.sleep(0.05)
            time.sleep(self.pause_s)


def direct_pg_writer(pg_url: str, model: dict[int, dict[str, Any]], pause_s: float = 0.004) -> Writer:
    conn = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    from psycopg.types.json import Jsonb

    def write(rec: dict[str, Any]) -> None:
        conn.execute("INSERT INTO items (id, name, qty, price, tags) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO "
                     "UPDATE SET name = excluded.name, qty = excluded.qty, price = excluded.price, "
                     "tags = excluded.tags",
                     (rec["id"], rec["name"], rec["qty"], rec["price"], Jsonb(rec["tags"])))

    def delete(i: int) -> None:
        conn.execute("DELETE FROM items WHERE id = %s", (i,))

    return Writer(model, write, delete, stop_on_frozen=True, pause_s=pause_s)


def router_writer(cfg_path: Path, model: dict[int, dict[str, Any]]) -> Writer:
    from shiftover.adapters.router import Backend

    holder: dict[str, Any] = {}

    def backend() -> Backend:  # one Backend per thread: made in the writer's own thread
        if "b" not in holder:
            holder["b"] = Backend(config(cfg_path))
        return holder["b"]

    return Writer(model, lambda rec: backend().upsert("items", [rec]), lambda i: backend().delete("items", [(i,)]),
                  stop_on_frozen=False)


def assert_model(adapter, model: dict[int, dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    from shiftover.adapters import canonical
    from tests.helpers import all_records

    got = {r["id"]: r for r in all_records(adapter, "items")}
    assert sorted(got) == sorted(model), f"{len(set(got) ^ set(model))} keys differ"
    for i, rec in model.items():
        assert canonical.canonical(got[i]) == canonical.canonical(rec), i


@pytest.mark.parametrize("kind", ["postgresql", "sqlite", "memory"])
def test_capture_sees_every_change_and_is_removed(tmp_path: Path, pg_url: str, kind: str) -> None:
    url = {"postgresql": pg_url, "sqlite": "sqlite:///cap.db", "memory": "memory://cap"}[kind]
    cfg_path = write_config(tmp_path, {"src": {"kind": kind, "url": url, "role": "primary"}})
    seed_items(cfg_path, "src", 10)
    with open_adapter(config(cfg_path), "src") as a:
        a.capture_start(["items"])
        a.capture_start(["items"])  # idempotent
        assert a.capturing() == ["items"]
        a.upsert("items", [{"id": 11, "name": "x", "qty": 1, "price": Decimal("1.00"), "tags": []}])
        a.upsert("items", [{"id": 3, "name": "changed", "qty": 2, "price": Decimal("2.00"), "tags": {}}])
        a.delete("items", [(5,)])
        changes = a.capture_read("items", 0, 100)
        assert [(c.key, c.op) for c in changes] == [((11,), "upsert"), ((3,), "upsert"), ((5,), "delete")]
        assert a.capture_pending("items") == 3
        a.capture_ack("items", [changes[0].seq])
        assert [c.key for c in a.capture_read("items")] == [(3,), (5,)]
        if kind == "postgresql":
            with pytest.raises(InvalidRequest, match="TRUNCATE"):
                with a.transaction(), a._conn() as conn:  # noqa: SLF001 - a raw statement as an app would send
                    import sqlalchemy as sa

                    conn.execute(sa.text("TRUNCATE items"))
        a.capture_stop(["items"])
        assert a.capturing() == [] and a.capture_pending("items") == 0
        a.upsert("items", [{"id": 12, "name": "y", "qty": 1, "price": Decimal("1.00"), "tags": []}])
        assert a.capture_read("items") == []
        if kind != "memory":
            assert "_shiftover_changes" not in str(a.collections())


def test_bypass_freeze_writes_through_only_for_this_block(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "lite": {"kind": "sqlite", "url": "sqlite:///l.db"}})
    for name in ("src", "lite"):
        seed_items(cfg_path, name, 5)
        with open_adapter(config(cfg_path), name) as a:
            a.freeze(["items"], reason="test")
            with pytest.raises(WriteFrozen):
                a.delete("items", [(1,)])
            with a.bypass_freeze():
                a.delete("items", [(1,)])
            with pytest.raises(WriteFrozen):
                a.delete("items", [(2,)])
            assert a.count("items") == 4 and a.frozen() == ["items"]
            a.unfreeze(["items"])


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("direction", ["pg_to_pg", "pg_to_sqlite"])
def test_blue_green_direct_writer(tmp_path: Path, pg_url: str, pg_url2: str, direction: str) -> None:
    """A client connected to PostgreSQL directly keeps writing; it is refused from the freeze on."""
    target = {"kind": "postgresql", "url": pg_url2} if direction == "pg_to_pg" else {"kind": "sqlite",
                                                                                      "url": "sqlite:///dst.db"}
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"}, "dst": target})
    model = seed_items(cfg_path, "src")
    writer = direct_pg_writer(pg_url, model)
    writer.start()
    time.sleep(0.3)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=700, batch_size=300, max_lag=20)
    writer.stop.set()
    writer.join(10)
    assert report.status == "switched", report.error
    assert writer.acked > 20 and writer.refused >= 1  # it wrote during the migration and was refused once frozen
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_model(src, model)  # every acknowledged write is on blue ...
        assert_same_records(src, dst, "items")  # ... and green equals blue value by value
        assert src.frozen() == ["items"]  # blue stays fenced
        assert src.capturing() == [] and dst.capturing() == ["items"]
    pointer = control(cfg_path).pointer()
    assert (pointer.provider, pointer.epoch) == ("dst", 2)
    assert report.freeze_ms is not None and report.freeze_ms < 5000
    assert any(n.startswith("records moved per phase: copy") for n in report.notes)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="BACKEND_010"):
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            conn.execute("DELETE FROM items WHERE id = 1")
    assert float(asyncio.run(_artifact("migrate-src-to-dst-progress"))) == 100.0
    phases = asyncio.run(_artifact("migrate-src-to-dst-phases"))
    assert "final delta (frozen)" in phases and "copy" in phases
    # the report's time-per-phase chart: the live phases, the frozen final delta last (where the freeze window is drawn)
    assert list(report.phase_seconds)[0] == "copy" and list(report.phase_seconds)[-1] == "final delta (frozen)"
    assert render_markdown(report).count("![time per phase](data:image/svg+xml;base64,") == 1


@pytest.mark.usefixtures("prefect_harness")
def test_blue_green_through_router(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    """The app writes through the router: it waits out the freeze and follows the switch to green."""
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}},
                            migration={"freeze_wait_s": 10}, failover={"router_follow_s": 0.2})
    model = seed_items(cfg_path, "src")
    writer = router_writer(cfg_path, model)
    writer.start()
    time.sleep(0.3)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=700, batch_size=300, max_lag=20)
    time.sleep(1.0)  # keep writing on green for a while
    writer.stop.set()
    writer.join(15)
    assert report.status == "switched", report.error
    assert writer.refused == 0, "the router should wait out the freeze, not fail"
    cfg = config(cfg_path)
    with open_adapter(cfg, "dst") as dst:
        assert_model(dst, model)  # every acknowledged write, before, during and after the cutover, is on green


@pytest.mark.usefixtures("prefect_harness")
def test_table_without_primary_key_is_named_by_dry_run_and_run(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 50)
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE TABLE audit_log (at timestamptz, line text)")
    for strategy in ("blue_green", "gradual"):
        dry = migrate(source="src", target="dst", strategy=strategy, config_path=str(cfg_path),
                      dry_run=True)
        assert dry.status == "dry-run"
        advice = [n for n in dry.notes if "'audit_log' has no primary key" in n]
        assert advice and "add a primary key" in advice[0] and "--collections" in advice[0]
        from shiftover.adapters.errors import MigrationFailed

        with pytest.raises(MigrationFailed, match="'audit_log' has no primary key"):
            migrate(source="src", target="dst", strategy=strategy, config_path=str(cfg_path))
    with open_adapter(config(cfg_path), "src") as src:
        assert src.capturing() == [] and src.frozen() == []  # refused before anything changed
    assert control(cfg_path).pointer().provider == "src"
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     collections=["items"])
    assert report.status == "switched"


def test_cli_offers_strategies_runner_rollback_release() -> None:
    from typer.testing import CliRunner

    from shiftover.cli.main import app

    runner = CliRunner()
    text = runner.invoke(app, ["migrate", "--help"], env={"COLUMNS": "200"}).output
    for option in ("blue_green", "gradual", "--runner", "--approve-cutover", "--max-lag", "--chunks-per-run"):
        assert option in text, option
    assert "copy green's writes since the cutover back" in runner.invoke(app, ["rollback", "--help"],
                                                                        env={"COLUMNS": "200"}).output
    assert runner.invoke(app, ["release", "--help"]).exit_code == 0


@pytest.mark.usefixtures("prefect_harness")
def test_blue_green_with_logical_decoding_capture(tmp_path: Path, pg_pair, pg_url2: str) -> None:  # type: ignore
    """capture_method: logical — a test_decoding slot instead of triggers; a direct writer keeps writing."""
    blue, _ = pg_pair
    blue.reset()
    blue.execute("ALTER SYSTEM SET wal_level = logical")
    blue.stop()
    blue.start()
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": blue.url, "role": "primary",
                                               "options": {"capture_method": "logical"}},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    model = seed_items(cfg_path, "src")
    with open_adapter(config(cfg_path), "src") as src:  # the slot sees a delete, with no trigger on the table
        src.capture_start(["items"])
        src.delete("items", [(1,)])
        del model[1]
        assert [(c.key, c.op) for c in src.capture_read("items")] == [((1,), "delete")]
        assert blue.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '_shiftover%'") == [(0,)]
    writer = direct_pg_writer(blue.url, model, pause_s=0.03)  # ~30 writes/s: see the README on its lag floor
    writer.start()
    time.sleep(0.3)
    report = migrate(source="src", target="dst", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=700, batch_size=300, max_lag=50, release_source=True)
    writer.stop.set()
    writer.join(10)
    assert report.status == "switched", report.error
    assert writer.acked > 20
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert_model(src, model)
        assert_same_records(src, dst, "items")
        assert src.capturing() == [] and src.frozen() == []  # released at once: no fence, no capture
    assert blue.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]  # the slot (and its WAL) is gone
