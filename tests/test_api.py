"""The application API: `from shiftover import Backend`, `Backend.from_config(path)`, `backend.db` (queries, update and
delete by query, transactions, raw SQL) through the router's pointer, freezes, epochs and mirrors; `backend.status()`
and `backend.metrics()`. Results are read back from the databases themselves."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shiftover import Backend
from shiftover.adapters.base import CollectionSchema, Column, Filter, ProbeResult
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import BackendError, InvalidRequest, StaleEpoch, WriteFrozen
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from tests.fixtures_clusters import write_config

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("status", "text"), Column("n", "integer")),
                         ("id",))
SEED = [{"id": i, "status": "paid" if i % 3 == 0 else ("open" if i % 3 == 1 else None), "n": i * 10}
        for i in range(1, 13)]


@pytest.fixture
def path(tmp_path):
    MemoryAdapter.reset("api-m")
    path = write_config(tmp_path, {
        "a": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'a.db'}", "role": "primary", "priority": 1},
        "b": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'b.db'}", "role": "standby", "priority": 2},
        "m": {"kind": "memory", "url": "memory://api-m", "role": "standby", "priority": 3},
    }, failover={"router_follow_s": 0.2}, migration={"freeze_wait_s": 0.3})
    cfg = load_config(path)
    for name in ("a", "b", "m"):
        with open_adapter(cfg, name) as a:
            a.create_collection(ITEMS)
            a.upsert("items", SEED)
    yield path
    MemoryAdapter.reset("api-m")


def rows(tmp_path, db: str) -> dict[int, tuple[str | None, int]]:
    with sqlite3.connect(tmp_path / db) as conn:
        return {i: (s, n) for i, s, n in conn.execute("SELECT id, status, n FROM items")}


def control_of(path) -> ControlStore:
    return ControlStore(load_config(path).control.url.get_secret_value())


def test_from_config_and_queries(path, tmp_path):
    with Backend.from_config(path) as backend:
        db = backend.db
        paid = db.find("items", [("status", "eq", "paid")], order_by=[("n", "desc")])
        assert [r["id"] for r in paid] == [12, 9, 6, 3]
        assert [r["id"] for r in db.find("items", order_by=[("id", "asc")], offset=4, limit=3)] == [5, 6, 7]
        assert [r["id"] for r in db.find("items", [("status", "is", None)])] == [2, 5, 8, 11]
        assert db.count("items", [("status", "ne", "paid")]) == 4  # NULL statuses do not match ne
        assert db.count("items", [Filter("status", "like", "o%"), ("n", "gt", 40)]) == 2  # 7, 10
        assert db.count("items") == 12
        assert db.get("items", 4) == {"id": 4, "status": "open", "n": 40}
        db.insert("items", {"id": 20, "status": "new", "n": 0})
        assert db.update("items", 20, {"n": 5})["n"] == 5
        assert rows(tmp_path, "a.db")[20] == ("new", 5) and 20 not in rows(tmp_path, "b.db")
        assert db.delete("items", [20, 99]) == 1
        for bad in ([("status", "between", 1)], ("status", "eq", "paid"), [("status", "eq")],
                    [("n", "in", 5)], [("status", "is", "open")], [("status", "like", 5)]):
            with pytest.raises(InvalidRequest) as info:
                db.find("items", bad)
            assert str(info.value).startswith("BACKEND_014") and "\n" not in str(info.value) and info.value.hint


def test_update_and_delete_many_return_counts_and_follow_the_pointer(path, tmp_path):
    with Backend.from_config(path) as backend:
        assert backend.db.update_many("items", [("status", "eq", "open")], {"status": "closed"}) == 4
        assert sorted(i for i, (s, _) in rows(tmp_path, "a.db").items() if s == "closed") == [1, 4, 7, 10]
        with pytest.raises(InvalidRequest) as info:
            backend.db.delete_many("items", [])
        assert info.value.code == "BACKEND_014" and info.value.hint
        control_of(path).switch(expected_epoch=1, provider="b", reason="test")
        time.sleep(0.25)
        assert backend.db.delete_many("items", [("n", "gte", 100)]) == 3
        assert sorted(rows(tmp_path, "b.db")) == list(range(1, 10))
        assert len(rows(tmp_path, "a.db")) == 12  # the old primary is not written


def test_update_and_delete_many_wait_out_a_freeze_then_refuse(path, tmp_path):
    control_of(path).set_freeze("a", ["items"], run_id=None, reason="cutover")
    with Backend.from_config(path) as backend:
        start = time.monotonic()
        with pytest.raises(WriteFrozen):
            backend.db.update_many("items", [("status", "eq", "open")], {"status": "x"})
        assert time.monotonic() - start >= 0.3
        with pytest.raises(WriteFrozen):
            backend.db.delete_many("items", [("id", "lt", 5)])
        with pytest.raises(WriteFrozen):
            backend.db.sql("DELETE FROM items")  # raw SQL may touch any table: any freeze on the provider holds it
        assert backend.db.sql("SELECT count(*) AS n FROM items", read_only=True).rows == [{"n": 12}]
    assert rows(tmp_path, "a.db") == {r["id"]: (r["status"], r["n"]) for r in SEED}


def test_a_writer_pinned_to_an_old_epoch_is_refused(path, tmp_path):
    with Backend.from_config(path, epoch=1) as backend:
        assert backend.db.update_many("items", [("id", "eq", 1)], {"n": 1}) == 1
        control_of(path).switch(expected_epoch=1, provider="b", reason="failover")
        with pytest.raises(StaleEpoch):
            backend.db.delete_many("items", [("id", "lte", 6)])
        with pytest.raises(StaleEpoch):
            with backend.db.transaction():
                pass
    assert len(rows(tmp_path, "a.db")) == 12 and len(rows(tmp_path, "b.db")) == 12


def test_mirror_mode_repeats_writes_by_query_and_transactions(path, tmp_path):
    with Backend.from_config(path, mirror=True) as backend:  # mirror: the first standby, b
        assert backend.db.update_many("items", [("status", "is", None)], {"status": "unknown"}) == 4
        with backend.db.transaction() as tx:
            tx.delete_many("items", [("status", "eq", "unknown")])
            tx.upsert("items", [{"id": 30, "status": "tx", "n": 3}])
    for db in ("a.db", "b.db"):
        got = rows(tmp_path, db)
        assert sorted(got) == [1, 3, 4, 6, 7, 9, 10, 12, 30] and got[30] == ("tx", 3)


def test_transactions_commit_or_roll_back(path, tmp_path):
    class Boom(Exception):
        pass

    with Backend.from_config(path) as backend:
        with pytest.raises(Boom):
            with backend.db.transaction() as tx:
                assert tx.update_many("items", [("id", "lte", 3)], {"n": 0}) == 3
                assert tx.count("items", [("n", "eq", 0)]) == 3  # the transaction sees its own writes
                tx.sql("DELETE FROM items WHERE id = :id", {"id": 12})
                raise Boom
        assert rows(tmp_path, "a.db") == {r["id"]: (r["status"], r["n"]) for r in SEED}
        with backend.db.transaction() as tx:
            tx.update_many("items", [("id", "lte", 3)], {"n": 0})
            tx.sql("DELETE FROM items WHERE id = :id", {"id": 12})
        got = rows(tmp_path, "a.db")
        assert 12 not in got and [got[i][1] for i in (1, 2, 3, 4)] == [0, 0, 0, 40]


def test_a_transaction_the_pointer_left_is_rolled_back(path, tmp_path):
    with Backend.from_config(path) as backend:
        with pytest.raises(StaleEpoch):
            with backend.db.transaction() as tx:
                tx.delete_many("items", [("id", "gt", 0)])
                control_of(path).switch(expected_epoch=1, provider="b", reason="failover")
    assert len(rows(tmp_path, "a.db")) == 12


def test_transactions_and_sql_where_the_provider_has_none(tmp_path, mongo_target):
    path = write_config(tmp_path, {
        "mg": {"kind": "mongodb", "url": mongo_target.url, "role": "primary",
               "options": {"database": mongo_target.database}},
    })
    with Backend.from_config(path) as backend:
        with open_adapter(backend.config, "mg") as a:
            a.create_collection(ITEMS)
        if not mongo_target.real:
            with pytest.raises(InvalidRequest) as info:
                with backend.db.transaction():
                    pass
            text = str(info.value)
            assert text.startswith("BACKEND_014 [mg]: provider 'mg' (mongodb) does not offer transactions")
            assert "\n" not in text and info.value.hint
        with pytest.raises(InvalidRequest) as info:
            backend.db.sql("select 1", read_only=True)
        assert info.value.code == "BACKEND_014" and "does not run SQL" in str(info.value)


def test_status_reports_health_from_recorded_probes(path):
    control = control_of(path)
    now = dt.datetime.now(dt.timezone.utc)
    for seconds, ok, ms in ((40, True, 10.0), (30, False, 5000.0), (20, True, 12.0), (10, True, 14.5)):
        control.record_probe(ProbeResult("a", ok, ms, None if ok else "BACKEND_005: timeout",
                                         at=now - dt.timedelta(seconds=seconds)))
    control.settle_health_state("a", "healthy", 1)
    with Backend.from_config(path) as backend:
        status = backend.status()
    assert status.current_provider == "a" and status.epoch == 1 and status.health == "healthy"
    assert status.uptime == 75.0 and status.response_time_ms == 14.5
    assert status.last_check is not None and abs((now - status.last_check).total_seconds() - 10) < 1
    b = next(p for p in status.providers if p.name == "b")
    assert (b.health, b.last_check, b.uptime, b.active) == ("unknown", None, None, False)
    assert status.model_dump(mode="json")["providers"][0]["kind"] == "sqlite"


def test_metrics_measure_each_operation_and_count_errors(path):
    with Backend.from_config(path) as backend:
        for _ in range(20):
            backend.db.find("items", [("status", "eq", "paid")])
        backend.db.count("items")
        backend.find("items")  # the router's own methods are measured too
        with pytest.raises(BackendError):
            backend.db.find("items", [("missing", "eq", 1)])
        metrics = backend.metrics()
    find = metrics.get("a", "find")
    assert find is not None and find.calls == 22 and find.errors == {"BACKEND_014": 1}
    assert 0 < find.p50_ms <= find.p95_ms <= find.p99_ms and metrics.get("a", "count").calls == 1
    families = {f.name: f for f in text_string_to_metric_families(metrics.prometheus())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    labels = (("operation", "find"), ("provider", "a"))
    assert samples[("shiftover_operation_duration_seconds_count", labels)] == 22
    assert samples[("shiftover_operation_duration_seconds", (*labels[:1], labels[1], ("quantile", "0.5")))] > 0
    assert samples[("shiftover_operation_errors_total", (("code", "BACKEND_014"), *labels))] == 1


def test_sql_filters_are_bound_and_identifiers_quoted_by_sqlalchemy(pg_url):
    import sqlalchemy as sa

    from shiftover.adapters.postgres.adapter import PostgresAdapter

    odd = CollectionSchema("select", (Column("id", "integer", False), Column("order", "text"),
                                      Column('Mixed "Case"', "integer")), ("id",))
    hostile = "x' OR 1=1; DROP TABLE \"select\"; --%"
    with PostgresAdapter("pg", pg_url, PostgresAdapter.Options()) as pg:
        pg.create_collection(odd)
        pg.upsert("select", [{"id": i, "order": f"o{i}" if i != 3 else hostile, 'Mixed "Case"': i % 2}
                             for i in range(1, 6)])
        seen: list[str] = []
        sa.event.listen(pg.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        got = pg.find("select", [Filter("order", "like", "o%"), Filter('Mixed "Case"', "eq", 1)],
                      order_by=[("order", "desc")], offset=1, limit=5)
        assert [r["id"] for r in got] == [1]  # o5, o1 match; the offset skips o5
        assert pg.count_matching("select", [Filter("order", "eq", hostile)]) == 1
        assert pg.update_where("select", [Filter("order", "ilike", hostile)], {"order": "safe"}) == 1
        assert pg.count("select") == 5 and pg.delete_where("select", [Filter("order", "eq", "safe")]) == 1
        assert all(hostile not in text and "DROP" not in text for text in seen)
        assert any('"Mixed ""Case"""' in text and '"order"' in text for text in seen)


def test_postgresql_engine_freeze_holds_writes_by_query_and_transactions_roll_back(pg_url, tmp_path):
    import psycopg

    path = write_config(tmp_path, {"pg": {"kind": "postgresql", "url": pg_url, "role": "primary"}},
                        migration={"freeze_wait_s": 0.3})
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")

    def stored() -> dict[int, int]:
        with psycopg.connect(dsn) as conn:
            return dict(conn.execute("SELECT id, n FROM items").fetchall())

    with Backend.from_config(path) as backend:
        with open_adapter(backend.config, "pg") as pg:
            pg.create_collection(ITEMS)
            pg.upsert("items", SEED)
            pg.freeze(["items"], reason="test")  # the engine's own freeze: a trigger, not a control-store flag
            try:
                with pytest.raises(WriteFrozen):
                    backend.db.update_many("items", [("id", "lte", 6)], {"n": 0})
                with pytest.raises(WriteFrozen):
                    backend.db.sql("DELETE FROM items WHERE id = :id", {"id": 1})
            finally:
                pg.unfreeze(["items"])
        assert stored() == {r["id"]: r["n"] for r in SEED}
        with pytest.raises(ZeroDivisionError):
            with backend.db.transaction() as tx:
                assert tx.delete_many("items", [("status", "is", None)]) == 4
                assert tx.count("items") == 8
                1 / 0  # noqa: B018
        assert len(stored()) == 12
        with backend.db.transaction() as tx:
            tx.delete_many("items", [("status", "is", None)])
            tx.update_many("items", [("status", "eq", "paid")], {"n": 1})
        assert stored() == {r["id"]: 1 if r["status"] == "paid" else r["n"] for r in SEED if r["status"]}
        refused = backend.metrics().get("pg", "update_many")
        assert refused.errors["BACKEND_010"] >= 2 and refused.calls == refused.errors["BACKEND_010"] + 1  # each try


def test_storage_follows_the_pointer(tmp_path):
    """`backend.storage` is the active provider's file store (here each keeps its files under options.files)."""
    files = {name: tmp_path / f"files-{name}" for name in ("a", "b")}
    path = write_config(tmp_path, {
        "a": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'a.db'}", "role": "primary", "priority": 1,
              "options": {"files": {"url": files["a"].as_uri()}}},
        "b": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'b.db'}", "role": "standby", "priority": 2,
              "options": {"files": {"url": files["b"].as_uri()}}},
    }, failover={"router_follow_s": 0.1})
    with Backend.from_config(path) as backend:
        backend.storage.upload("avatars", "u1/photo.png", b"\x89PNG one", content_type="image/png")
        assert backend.storage.download("avatars", "u1/photo.png") == b"\x89PNG one"
        control_of(path).switch(expected_epoch=1, provider="b", reason="failover")
        time.sleep(0.2)
        backend.storage.upload("avatars", "u2/photo.png", b"\x89PNG two")
        assert [f.path for f in backend.storage.list("avatars")] == ["u2/photo.png"]
    assert (files["a"] / "avatars" / "u1" / "photo.png").read_bytes() == b"\x89PNG one"
    assert (files["b"] / "avatars" / "u2" / "photo.png").read_bytes() == b"\x89PNG two"
    assert not (files["b"] / "avatars" / "u1").exists()


def test_mock_mode_serves_fixture_files_through_the_same_api(tmp_path):
    """A memory provider with options.fixtures (beside backends.yaml) starts with the fixtures' records: the app's
    calls work unchanged against it, and a bad fixture is one BACKEND_002 line."""
    import json

    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "tickets.json").write_text(json.dumps([
        {"id": 1, "title": "Login fails", "status": "open", "points": 3},
        {"id": 2, "title": "Typo on the home page", "status": "closed", "points": None},
        {"id": 3, "title": "Slow search", "status": "open", "points": 5}]))
    (fixtures / "memberships.json").write_text(json.dumps({"key": ["team", "user"], "records": [
        {"team": "core", "user": "ada", "role": "owner"}, {"team": "core", "user": "bob", "role": "member"}]}))
    MemoryAdapter.reset("mock-mode")
    path = write_config(tmp_path, {"mock": {"kind": "memory", "url": "memory://mock-mode", "role": "primary",
                                            "options": {"fixtures": "fixtures"}}})
    with Backend.from_config(path) as backend:
        assert backend.db.count("tickets", [("status", "eq", "open")]) == 2
        assert [r["id"] for r in backend.db.find("tickets", [("points", "is", None)])] == [2]
        assert backend.db.get("memberships", ("core", "bob"))["role"] == "member"
        backend.db.upsert("tickets", [{"id": 4, "title": "New", "status": "open", "points": 1}])
    with Backend.from_config(path) as again:  # the same store: loaded once, the app's writes kept
        assert again.db.count("tickets") == 4
    (fixtures / "broken.json").write_text("[{")
    MemoryAdapter.reset("mock-mode")
    with Backend.from_config(path) as backend, pytest.raises(BackendError) as err:
        backend.db.count("tickets")
    assert err.value.code == "BACKEND_002" and "broken.json" in str(err.value)
    MemoryAdapter.reset("mock-mode")
