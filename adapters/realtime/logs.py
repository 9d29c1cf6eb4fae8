"""Realtime by polling a log: SQLite's `_shiftover_realtime` table and the memory store's feed (every 0.1 s).

SQLite: AFTER INSERT/UPDATE/DELETE triggers `_shiftover_realtime_<table>_<op>` write (tbl, key as a JSON array, op,
at) to `_shiftover_realtime` in the writer's transaction, so a rolled-back write leaves nothing and every client's
write is seen. SQLite serialises writers, so entries commit in `seq` order. Subscribers delete entries older than
60 s; `uninstall_sqlite` drops the table's triggers, and the log with the last of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import TYPE_CHECKING

from shiftover.adapters import canonical
from shiftover.adapters.realtime.change import Change

if TYPE_CHECKING:
    from shiftover.adapters.memory import MemoryAdapter
    from shiftover.adapters.sqlite.adapter import SqliteAdapter

LOG = "_shiftover_realtime"
_OPS = ("INSERT", "UPDATE", "DELETE")
_KEEP_S = 60.0
_POLL_S = 0.1
_LOG = logging.getLogger("shiftover.realtime")


def _trigger(table: str, op: str) -> str:
    return f"{LOG}_{table}_{op.lower()}"


def _install_sqlite(adapter: SqliteAdapter, table: str) -> None:
    prep = adapter.engine.dialect.identifier_preparer
    log, tbl = prep.quote(LOG), "'" + table.replace("'", "''") + "'"
    keys = adapter.key_of(table)
    new = "json_array(" + ", ".join(f"NEW.{prep.quote(k)}" for k in keys) + ")"
    old = "json_array(" + ", ".join(f"OLD.{prep.quote(k)}" for k in keys) + ")"
    now = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
    row = "INSERT INTO " + log + " (tbl, key, op, at) VALUES ({tbl}, {key}, '{op}', {now});"
    bodies = {
        "INSERT": row.format(tbl=tbl, key=new, op="insert", now=now),
        "UPDATE": f"INSERT INTO {log} (tbl, key, op, at) SELECT {tbl}, {old}, 'delete', {now} WHERE {old} <> {new}; "
                  f"INSERT INTO {log} (tbl, key, op, at) SELECT {tbl}, {new}, "
                  f"CASE WHEN {old} <> {new} THEN 'insert' ELSE 'update' END, {now};",
        "DELETE": row.format(tbl=tbl, key=old, op="delete", now=now),
    }
    with adapter._conn() as conn:
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {log} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "tbl TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, at TEXT NOT NULL)")
        for op, body in bodies.items():
            conn.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS {prep.quote(_trigger(table, op))} "
                                 f"AFTER {op} ON {prep.quote(table)} BEGIN {body} END")


def uninstall_sqlite(adapter: SqliteAdapter, table: str) -> None:
    """Drop the table's realtime triggers; with the last of them, the log. Idempotent."""
    prep = adapter.engine.dialect.identifier_preparer
    with adapter._conn() as conn:
        for op in _OPS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {prep.quote(_trigger(table, op))}")
        left = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND "
                                    f"substr(name, 1, {len(LOG) + 1}) = '{LOG}_'").scalar()
        if not left:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prep.quote(LOG)}")


class SqliteLogSource:
    def __init__(self, adapter: SqliteAdapter, collection: str) -> None:
        self._adapter, self._collection = adapter, collection
        schema = adapter.schema(collection)
        self._key_cols = [schema.column(k) for k in schema.key]
        _install_sqlite(adapter, collection)
        self._after = self._read("SELECT coalesce(max(seq), 0) FROM _shiftover_realtime", {})[0][0]
        self._trimmed = time.monotonic()

    def _read(self, statement: str, params: dict[str, object]) -> list[tuple[object, ...]]:
        import sqlalchemy as sa

        with self._adapter._errors(), self._adapter._conn() as conn:
            return [tuple(r) for r in conn.execute(sa.text(statement), params).all()]

    def poll(self, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self._read("SELECT seq, key, op, at FROM _shiftover_realtime WHERE tbl = :t AND seq > :s "
                              "ORDER BY seq LIMIT 1000", {"t": self._collection, "s": self._after})
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        self._trim()
        out = []
        for seq, key_text, op, at in rows:
            self._after = int(seq)  # type: ignore[call-overload]
            values = json.loads(str(key_text))
            key = tuple(None if v is None else self._adapter._from_db(c, v)
                        for c, v in zip(self._key_cols, values, strict=True))
            record = None if op == "delete" else self._adapter.get(self._collection, key)
            when = canonical.utc(dt.datetime.fromisoformat(str(at)))
            out.append(Change(self._collection, op, key, record, when, self._adapter.name))  # type: ignore[arg-type]
        return out

    def _trim(self) -> None:
        if time.monotonic() - self._trimmed < 5:
            return
        self._trimmed = time.monotonic()
        cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=_KEEP_S)).strftime("%Y-%m-%dT%H:%M:%S")
        with self._adapter._errors(), self._adapter._conn() as conn:
            import sqlalchemy as sa

            conn.execute(sa.text("DELETE FROM _shiftover_realtime WHERE at < :c"), {"c": cutoff})

    def close(self) -> None:
        self._adapter.close()


class MemoryFeedSource:
    """The memory store's feed; a subscriber more than 10,000 writes behind misses the oldest (logged)."""

    def __init__(self, adapter: MemoryAdapter, collection: str) -> None:
        self._adapter, self._collection = adapter, collection
        self._after = adapter._call("subscribe").feed_seq

    def poll(self, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            store = self._adapter._call("poll")
            with store.lock:
                fresh = [e for e in store.feed if e[0] > self._after]
            if fresh and fresh[0][0] > self._after + 1:
                _LOG.warning("realtime on %r fell %d writes behind the memory feed: those changes were missed",
                             self._collection, fresh[0][0] - self._after - 1)
            if fresh or time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        out = []
        for seq, name, key, op, at in fresh:
            self._after = seq
            if name == self._collection:
                record = None if op == "delete" else self._adapter.get(name, key)
                out.append(Change(name, op, key, record, at, self._adapter.name))  # type: ignore[arg-type]
        return out

    def close(self) -> None:
        self._adapter.close()
