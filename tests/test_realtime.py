"""`backend.realtime`: inserts, updates and deletes made by another client (the engine's own driver, not Shiftover)
arrive as Change events, in order, within 1 s each, through the iterator and the callback API, on PostgreSQL,
Supabase's database, SQLite, memory and Firestore; a rolled-back write never arrives; uninstall removes the triggers
(status lists them until then); a pointer switch ends a subscription; MongoDB without change streams (mongomock) is
refused with BACKEND_014."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from shiftover import Backend
from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.realtime import Change, Subscription
from shiftover.adapters.registry import open_adapter
from shiftover.cli.installed import installed_rows
from shiftover.control.store import ControlStore
from tests.fixtures_clusters import write_config

LATENCY_S = 1.0


@dataclass
class Env:
    path: Any  # backends.yaml
    kind: str
    key: Callable[[int], Any]  # the key value of record n on this provider
    insert: Callable[[int, str], None]
    update: Callable[[int, str], None]
    delete: Callable[[int], None]


def _schema(kind: str) -> CollectionSchema:
    key = Column("id", "text" if kind == "firestore" else "integer", False)
    return CollectionSchema("items", (key, Column("name", "text"), Column("n", "integer")), ("id",))


def _pg_writer(url: str) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None], Any]:
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    return (lambda i, name: conn.execute("INSERT INTO items (id, name, n) VALUES (%s, %s, %s)", [i, name, i]),
            lambda i, name: conn.execute("UPDATE items SET name = %s WHERE id = %s", [name, i]),
            lambda i: conn.execute("DELETE FROM items WHERE id = %s", [i]), conn)


def _sqlite_writer(file: Any) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None], Any]:
    conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    return (lambda i, name: conn.execute("INSERT INTO items (id, name, n) VALUES (?, ?, ?)", (i, name, i)),
            lambda i, name: conn.execute("UPDATE items SET name = ? WHERE id = ?", (name, i)),
            lambda i: conn.execute("DELETE FROM items WHERE id = ?", (i,)), conn)


def _firestore_writer(project: str, host: str) -> tuple[Callable[..., None], Callable[..., None],
                                                        Callable[..., None], Any]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(project=project, credentials=AnonymousCredentials())
    client._emulator_host = host
    items = client.collection("items")
    return (lambda i, name: items.document(str(i)).set({"name": name, "n": i}),
            lambda i, name: items.document(str(i)).update({"name": name}),
            lambda i: items.document(str(i)).delete(), client)


def _memory_writer(path: Any) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None], Any]:
    adapter = open_adapter(load_config(path), "p")  # a client of the store of its own, not the Backend
    return (lambda i, name: adapter.insert("items", [{"id": i, "name": name, "n": i}]),
            lambda i, name: adapter.update("items", (i,), {"name": name}),
            lambda i: adapter.delete("items", [(i,)]), adapter)


@pytest.fixture(params=["postgresql", "supabase", "sqlite", "memory", "firestore"])
def env(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Env]:
    kind, options = request.param, {}
    if kind in ("postgresql", "supabase"):  # Supabase's database is its PostgreSQL (no Auth/Storage API here)
        url = request.getfixturevalue("pg_url")
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'rt.db'}"
    elif kind == "memory":
        url = "memory://realtime"
    else:
        emulator = request.getfixturevalue("firestore_emulator")
        url, options = f"firestore://{emulator.project}", {"emulator_host": emulator.host}
    path = write_config(tmp_path, {"p": {"kind": kind, "url": url, "role": "primary", "options": options}})
    with open_adapter(load_config(path), "p") as adapter:
        adapter.create_collection(_schema(kind))
    if kind in ("postgresql", "supabase"):
        writer = _pg_writer(url)
    elif kind == "sqlite":
        writer = _sqlite_writer(tmp_path / "rt.db")
    elif kind == "memory":
        writer = _memory_writer(path)
    else:
        writer = _firestore_writer(emulator.project, emulator.host)
    key = (lambda i: str(i)) if kind == "firestore" else (lambda i: i)
    yield Env(path, kind, key, *writer[:3])
    writer[3].close()


def _reader(sub: Subscription, out: queue.Queue[tuple[float, Change]]) -> threading.Thread:
    """Iterate the subscription on a thread of its own, stamping each event's arrival."""
    def run() -> None:
        for change in sub:
            out.put((time.monotonic(), change))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _arrives(out: queue.Queue[tuple[float, Change]], since: float) -> tuple[float, Change]:
    arrived, change = out.get(timeout=5)
    return arrived - since, change


def _check_one_by_one(env: Env, out: queue.Queue[tuple[float, Change]]) -> list[float]:
    """Insert, update and delete record 1; each must arrive, with its op, key and record, within LATENCY_S."""
    k = env.key(1)
    latencies = []
    for op, write, record in (("insert", lambda: env.insert(1, "a"), {"id": k, "name": "a", "n": 1}),
                              ("update", lambda: env.update(1, "b"), {"id": k, "name": "b", "n": 1}),
                              ("delete", lambda: env.delete(1), None)):
        start = time.monotonic()
        write()
        latency, change = _arrives(out, start)
        assert (change.op, change.key, change.record, change.collection) == (op, (k,), record, "items")
        assert change.provider == "p"
        assert latency < LATENCY_S, f"{op} arrived after {latency:.3f} s on {env.kind}"
        latencies.append(latency)
    return latencies


def _check_burst(env: Env, out: queue.Queue[tuple[float, Change]]) -> None:
    """Writes in quick succession arrive in the order they were made."""
    start = time.monotonic()
    env.insert(2, "x")
    env.insert(3, "y")
    env.update(2, "z")
    env.delete(3)
    got = [_arrives(out, start) for _ in range(4)]
    assert [(c.op, c.key) for _, c in got] == [("insert", (env.key(2),)), ("insert", (env.key(3),)),
                                               ("update", (env.key(2),)), ("delete", (env.key(3),))]
    assert got[-1][0] < LATENCY_S * 2
    assert out.empty()


def test_iterator_delivers_another_clients_changes_in_order(env: Env) -> None:
    out: queue.Queue[tuple[float, Change]] = queue.Queue()
    with Backend.from_config(env.path) as backend:
        with backend.realtime.subscribe("items") as sub:
            assert sub.provider == "p"
            reader = _reader(sub, out)
            latencies = _check_one_by_one(env, out)
            _check_burst(env, out)
        reader.join(timeout=3)
        assert not reader.is_alive(), "close() did not end the iteration"
    print(f"{env.kind}: latencies insert/update/delete {[round(x * 1000) for x in latencies]} ms")


def test_callback_receives_the_same(env: Env) -> None:
    out: queue.Queue[tuple[float, Change]] = queue.Queue()
    with Backend.from_config(env.path) as backend:
        sub = backend.realtime.on("items", lambda change: out.put((time.monotonic(), change)))
        try:
            _check_one_by_one(env, out)
        finally:
            sub.close()
        assert sub.closed and sub.error is None
        env.insert(9, "after close")
        time.sleep(0.5)
        assert out.empty()


def test_a_rolled_back_write_is_never_delivered(env: Env) -> None:
    out: queue.Queue[tuple[float, Change]] = queue.Queue()
    with Backend.from_config(env.path) as backend, open_adapter(load_config(env.path), "p") as other:
        with backend.realtime.subscribe("items") as sub:
            reader = _reader(sub, out)
            with pytest.raises(RuntimeError), other.transaction():
                other.insert("items", [{"id": env.key(5), "name": "never", "n": 5}])
                raise RuntimeError("roll it back")
            start = time.monotonic()
            env.insert(6, "kept")
            latency, change = _arrives(out, start)
            assert (change.op, change.key, latency < LATENCY_S) == ("insert", (env.key(6),), True)
            time.sleep(0.3)
            assert out.empty()
        reader.join(timeout=3)


def test_events_filter(env: Env) -> None:
    out: queue.Queue[tuple[float, Change]] = queue.Queue()
    with Backend.from_config(env.path) as backend:
        with backend.realtime.on("items", lambda c: out.put((time.monotonic(), c)), events=("delete",)):
            env.insert(4, "a")
            env.update(4, "b")
            start = time.monotonic()
            env.delete(4)
            latency, change = _arrives(out, start)
            assert (change.op, change.key, change.record) == ("delete", (env.key(4),), None)
            assert latency < LATENCY_S
        with pytest.raises(InvalidRequest, match="unknown realtime event"):
            backend.realtime.subscribe("items", events=("upsert",))


def _pg_realtime_objects(url: str) -> tuple[list[str], int]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        triggers = [r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                                               "AND tgrelid = 'public.items'::regclass ORDER BY 1")]
        funcs = conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'shiftover_realtime_notify'").fetchone()
    return triggers, funcs[0] if funcs else 0


def test_postgres_uninstall_removes_the_trigger(pg_url: str, tmp_path: Any) -> None:
    path = write_config(tmp_path, {"p": {"kind": "postgresql", "url": pg_url, "role": "primary"}})
    with open_adapter(load_config(path), "p") as adapter:
        adapter.create_collection(_schema("postgresql"))
    with Backend.from_config(path) as backend:
        assert _pg_realtime_objects(pg_url) == ([], 0)
        backend.realtime.subscribe("items").close()
        backend.realtime.subscribe("items").close()  # installing again is a no-op
        assert _pg_realtime_objects(pg_url) == (["shiftover_realtime_items"], 1)
        rows = [(r.item.group, r.item.what, r.item.name, r.remove) for r in installed_rows(load_config(path), "p", [])
                if r.item]
        assert rows == [("realtime", "realtime trigger", "shiftover_realtime_items",
                         "backend.realtime.uninstall('items') in Python"),
                        ("realtime", "realtime function", "public.shiftover_realtime_notify()",
                         "goes with the last realtime trigger")]
        backend.realtime.uninstall("items")
        assert _pg_realtime_objects(pg_url) == ([], 0)
        assert installed_rows(load_config(path), "p", []) == []
        backend.realtime.uninstall("items")  # idempotent
        # the app's writes go on as before
        backend.db.insert("items", {"id": 1, "name": "a", "n": 1})
        assert backend.db.get("items", 1) == {"id": 1, "name": "a", "n": 1}


def test_postgres_realtime_objects_never_move_with_the_schema(pg_url: str, tmp_path: Any) -> None:
    """A PostgreSQL-to-PostgreSQL migration copies the tables' schema with pg_dump: not the realtime trigger."""
    from shiftover.adapters.postgres import schema as pg_schema

    path = write_config(tmp_path, {"p": {"kind": "postgresql", "url": pg_url, "role": "primary"}})
    with open_adapter(load_config(path), "p") as adapter:
        adapter.create_collection(_schema("postgresql"))
    with Backend.from_config(path) as backend:
        backend.realtime.subscribe("items").close()
    with open_adapter(load_config(path), "p") as adapter:
        entries = pg_schema.toc(pg_schema.dump(adapter, tmp_path / "items.dump"))  # type: ignore[arg-type]
        assert any("shiftover_realtime" in e.tag for e in entries)  # pg_dump sees them ...
        chosen = pg_schema.select(adapter, entries, ["items"]).entries  # type: ignore[arg-type]
    tags = [e.tag for group in chosen.values() for e in group]
    assert any("items" in t for t in tags)
    assert not [t for t in tags if "shiftover_realtime" in t]  # ... and they are left behind


def test_sqlite_uninstall_removes_triggers_and_log(tmp_path: Any) -> None:
    path = write_config(tmp_path, {"p": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'rt.db'}",
                                         "role": "primary"}})
    with open_adapter(load_config(path), "p") as adapter:
        adapter.create_collection(_schema("sqlite"))

    def objects() -> list[tuple[str, str]]:
        with sqlite3.connect(tmp_path / "rt.db") as conn:
            return list(conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE '_shiftover_realtime%' "
                                     "ORDER BY 1, 2"))

    with Backend.from_config(path) as backend:
        backend.realtime.subscribe("items").close()
        assert objects() == [("table", "_shiftover_realtime"), ("trigger", "_shiftover_realtime_items_delete"),
                             ("trigger", "_shiftover_realtime_items_insert"),
                             ("trigger", "_shiftover_realtime_items_update")]
        groups = {(r.item.group, r.remove) for r in installed_rows(load_config(path), "p", []) if r.item}
        assert groups == {("realtime", "backend.realtime.uninstall('items') in Python"),
                          ("realtime", "goes with the last realtime trigger")}
        backend.realtime.uninstall("items")
        assert objects() == []


def test_a_switch_ends_the_subscription(tmp_path: Any) -> None:
    path = write_config(tmp_path, {
        "a": {"kind": "memory", "url": "memory://rt-a", "role": "primary", "priority": 1},
        "b": {"kind": "memory", "url": "memory://rt-b", "role": "standby", "priority": 2},
    })
    cfg = load_config(path)
    for name in ("a", "b"):
        with open_adapter(cfg, name) as adapter:
            adapter.create_collection(_schema("memory"))
    with Backend.from_config(path) as backend:
        sub = backend.realtime.subscribe("items")
        with ControlStore(cfg.control.url.get_secret_value()) as control:
            pointer = control.ensure_pointer("a")
            control.switch(expected_epoch=pointer.epoch, provider="b", reason="test")
        start = time.monotonic()
        events = list(sub)  # ends by itself
        assert [(c.op, c.provider) for c in events] == [("switched", "b")]
        assert time.monotonic() - start < 2.5
        assert sub.closed


def test_mongodb_without_change_streams_is_refused(mongo_target: Any, tmp_path: Any) -> None:
    if mongo_target.real:
        pytest.skip("MONGODB_URL is set: change streams depend on that server")
    path = write_config(tmp_path, {"m": {"kind": "mongodb", "url": mongo_target.url, "role": "primary",
                                         "options": {"database": mongo_target.database}}})
    with open_adapter(load_config(path), "m") as adapter:
        adapter.create_collection(_schema("mongodb"))
    with Backend.from_config(path) as backend, pytest.raises(InvalidRequest) as err:
        backend.realtime.subscribe("items")
    assert err.value.code == "BACKEND_014" and "replica set" in str(err.value) and err.value.hint
