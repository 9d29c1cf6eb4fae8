"""SQLite through SQLAlchemy. URL: `sqlite:///relative/or/absolute/path.db` (relative to backends.yaml).

SQLite has no decimal or timestamp storage of its own, so tables Shiftover creates declare types with TEXT affinity
(`DECIMAL_TEXT(12,2)`, `TIMESTAMPTZ_TEXT`, `JSON_TEXT` ...) that keep values exact and read back to the same canonical
type. Tables made by others are read by SQLite's affinity rules. A column that came from another engine keeps its native
type there (e.g. `postgresql:interval`, with what restoring it needs) in the table `_shiftover_schemas`, so a move back
restores it. The write freeze is a set of BEFORE triggers that abort every INSERT, UPDATE and DELETE, whoever the
client is.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shiftover.adapters import canonical
from shiftover.adapters.base import CanonicalType, Capabilities, Change, CollectionSchema, Column, Installed
from shiftover.adapters.errors import (
    BackendError,
    CollectionNotFound,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    WriteFrozen,
    redact,
)
from shiftover.adapters.query import like_glob
from shiftover.adapters.sql import NamedType, SqlAdapter

_DECLARED = {
    "integer": "INTEGER",
    "float": "REAL",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ_TEXT",
    "date": "DATE_TEXT",
    "json": "JSON_TEXT",
    "bytes": "BLOB",
    "uuid": "UUID_TEXT",
}
_FREEZE_OPS = ("INSERT", "UPDATE", "DELETE")
_READ_ONLY = "shiftover_read_only"  # execution option: BEGIN (a read snapshot) instead of BEGIN IMMEDIATE
_RECORDS = sa.Table("_shiftover_schemas", sa.MetaData(), sa.Column("name", sa.Text, primary_key=True),
                    sa.Column("natives", sa.Text, nullable=False))  # JSON: {column: [native, native_def]}


class SqliteAdapter(SqlAdapter):
    kind = "sqlite"
    offers = Capabilities(
        transactions=True, engine_freeze=True, concurrent_writes=False, change_feed="updated_at column",
        capture="row triggers into a change-log table", bulk_copy="sqlite", digest_pushdown="sqlite", raw_sql=True,
    )

    def _make_engine(self) -> sa.Engine:
        url = self.url or "sqlite:///:memory:"
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN be the real one
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def _reading(self):  # type: ignore[no-untyped-def]
        """A connection in a read transaction: a snapshot that takes no write lock (WAL), so readers neither wait for
        each other nor for a writer. Inside a transaction of this adapter, that transaction's connection."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._errors(), self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except BackendError:
            raise
        except sa.exc.DBAPIError as exc:
            raise self._translate(exc.orig) from None
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        except sa.exc.SQLAlchemyError as exc:
            raise InvalidRequest(redact(str(exc).splitlines()[0]), provider=self.name) from None

    def _translate(self, exc: BaseException | None) -> BackendError:
        text = redact(str(exc))
        if "BACKEND_010" in text:
            return WriteFrozen(text.replace("BACKEND_010: ", ""), hint="retry after the cutover finishes",
                               provider=self.name)
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in text or "busy" in text:
                return ProviderUnavailable(f"database is busy: {text}", hint="retry", provider=self.name)
            if "no such table" in text:
                return CollectionNotFound(text, provider=self.name)
            if "unable to open" in text:
                return ProviderUnavailable(f"cannot open the database file: {text}",
                                           hint="check the path in the provider's url", provider=self.name)
        return InvalidRequest(f"SQLite refused the statement: {text}", provider=self.name)

    # -- types ---------------------------------------------------------------------------------------------------------
    def _column_infos(self, insp: Any, name: str) -> list[dict[str, Any]]:
        with self._conn() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA table_info({self.engine.dialect.identifier_preparer.quote(name)})")
            return [{"name": r[1], "type": r[2] or "", "nullable": not r[3]} for r in rows]

    def declared_types(self, name: str) -> dict[str, str]:
        """Each column's declared type, as the table was created (what decides how SQLite stores a value)."""
        with self._reading() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA table_info({self.engine.dialect.identifier_preparer.quote(name)})")
            return {str(r[1]): str(r[2] or "").upper() for r in rows}

    def key_boundaries(self, name: str, every: int) -> list[Any]:
        """Every `every`-th key, found by stepping along the key's index (`LIMIT 1 OFFSET every - 1` after the previous
        boundary), in one snapshot: no window numbering the whole table (a tenth of the time at 50,000 rows)."""
        table, schema = self.table(name), self.schema(name)
        cols = [schema.column(k) for k in self.key_of(name)]
        out: list[Any] = []
        with self._reading() as conn:
            while True:
                after = out[-1] if out else None
                stmt = sa.select(*[table.c[c.name] for c in cols]).where(*self._range_where(name, after, None))
                row = conn.execute(stmt.order_by(*self._ordered(name)).offset(every - 1).limit(1)).first()
                if row is None:
                    return out
                out.append(tuple(self._from_db(c, v) for c, v in zip(cols, row, strict=True)))

    # -- SQLite to SQLite in the engine (adapters/sqlite/native.py) ----------------------------------------------------
    def copy_range_from(self, source: Any, name: str, rng: Any, progress: Callable[[int], None] | None = None) -> int:
        """One INSERT … SELECT in the engine (no row passes through here, so `progress` hears nothing until the end)."""
        from shiftover.adapters.sqlite import native as sqlite_native

        if isinstance(source, SqliteAdapter) and sqlite_native.database_file(source):
            return sqlite_native.copy_range(self, source, name, rng)
        with self.transaction():  # an in-memory source: no file to attach, so the rows pass through here
            copied = 0
            with self._conn() as conn:
                conn.execute(sa.delete(self.table(name)).where(*self._range_where(name, rng.lo, rng.hi)))
            for rows in source.scan_range(name, rng, batch=5000):
                copied += self.upsert(name, rows)
            return copied

    def pushdown_methods(self, name: str, columns: Sequence[str]) -> tuple[str, ...]:
        from shiftover.adapters.sqlite import native as sqlite_native

        return sqlite_native.methods(self, name, columns)

    def pushdown_digests(self, name: str, ranges: Sequence[Any], columns: Sequence[str], method: str) -> list[Any]:
        from shiftover.adapters.sqlite import native as sqlite_native

        return sqlite_native.digests(self, name, ranges, columns, method)

    def _canonical_column(self, info: dict[str, Any]) -> Column:
        declared = str(info["type"]).upper()
        precision = scale = None
        m = re.search(r"\((\d+)\s*(?:,\s*(\d+))?\)", declared)
        if m:
            precision = int(m[1])
            scale = int(m[2]) if m[2] else None
        ctype: CanonicalType
        if "BOOL" in declared:
            ctype = "boolean"
        elif "INT" in declared:
            ctype = "integer"
        elif "DECIMAL" in declared or "NUMERIC" in declared:
            ctype = "decimal"
        elif any(t in declared for t in ("REAL", "FLOA", "DOUB")):
            ctype = "float"
        elif "TIMESTAMP" in declared or "DATETIME" in declared:
            ctype = "timestamp"
        elif "DATE" in declared:
            ctype = "date"
        elif "JSON" in declared:
            ctype = "json"
        elif "UUID" in declared:
            ctype = "uuid"
        elif "BLOB" in declared or declared == "" or declared == "NULL":
            ctype = "bytes"
        else:
            ctype = "text"
        return Column(info["name"], ctype, bool(info["nullable"]), precision, scale)

    # -- the schema record: native types of columns that came from another engine -------------------------------------
    def schema(self, name: str) -> CollectionSchema:
        if name in self._schemas:
            return self._schemas[name]
        base = super().schema(name)
        with self._conn() as conn:
            text = conn.execute(sa.select(_RECORDS.c.natives).where(_RECORDS.c.name == name)).scalar() \
                if sa.inspect(conn).has_table(_RECORDS.name) else None
        if text:
            natives = json.loads(text)
            base = CollectionSchema(name, tuple(Column(c.name, c.type, c.nullable, c.precision, c.scale,
                                                       *natives.get(c.name, (None, None))) for c in base.columns),
                                    base.key)
            self._schemas[name] = base
        return base

    def create_collection(self, schema: CollectionSchema) -> None:
        natives = {c.name: [c.native, c.native_def] for c in schema.columns if c.native}
        with self._conn() as conn:
            super().create_collection(schema)
            if natives:
                _RECORDS.create(conn, checkfirst=True)
                conn.execute(self._insert(_RECORDS).on_conflict_do_update(
                    index_elements=["name"], set_={"natives": sa.literal_column("excluded.natives")}),
                    {"name": schema.name, "natives": json.dumps(natives, sort_keys=True)})
        self._forget(schema.name)

    def drop_collection(self, name: str) -> None:
        with self._conn() as conn:
            super().drop_collection(name)
            if sa.inspect(conn).has_table(_RECORDS.name):
                conn.execute(sa.delete(_RECORDS).where(_RECORDS.c.name == name))

    def _sa_type(self, col: Column) -> sa.types.TypeEngine:
        if col.type == "decimal":
            args = f"({col.precision},{col.scale or 0})" if col.precision else ""
            return NamedType(f"DECIMAL_TEXT{args}")
        return NamedType(_DECLARED[col.type])

    def _insert(self, table: sa.Table) -> Any:
        return sqlite_insert(table)

    def upsert(self, name: str, records: Sequence[Any]) -> int:
        from shiftover.adapters.sqlite import rows as sqlite_rows

        sqlite_rows.write_records(self, name, records)
        return len(records)

    def replace_range_hashed(self, name: str, rng: Any, records: Sequence[Any], columns: Sequence[str]) -> int:
        """`replace_range`, returning the sum of the row hashes of what it stored, in the terms of the stored-values
        digest over `columns` (adapters/sqlite/native.py): the source side of that digest, made from what is sent."""
        from shiftover.adapters.sqlite import rows as sqlite_rows

        return sqlite_rows.replace_range_hashed(self, name, rng, records, columns)

    def encoded_hash(self, name: str, records: Sequence[Any], columns: Sequence[str]) -> int:
        """The sum of the row hashes `records` would have once stored here (see `replace_range_hashed`)."""
        from shiftover.adapters.sqlite import native as sqlite_native
        from shiftover.adapters.sqlite import rows as sqlite_rows

        return sqlite_native.rows_hash(sqlite_rows.rows_for(self, self.schema(name), columns, records))

    def encoded_method(self, schema: CollectionSchema, columns: Sequence[str]) -> str | None:
        from shiftover.adapters.sqlite import rows as sqlite_rows

        return sqlite_rows.encoded_method(self, schema, columns)

    def _to_db(self, col: Column, value: Any) -> Any:
        t = col.type
        try:
            if t == "decimal":
                return canonical.number_text(value if isinstance(value, Decimal) else Decimal(str(value)))
            if t == "timestamp":
                if isinstance(value, str):
                    value = dt.datetime.fromisoformat(value)
                return canonical.utc(value).isoformat(timespec="microseconds")
            if t == "date":
                return value.isoformat() if isinstance(value, dt.date) else str(value)
            if t == "json":
                return json.dumps(canonical.jsonable(value), ensure_ascii=False)
            if t == "boolean":
                return 1 if value else 0
            if t == "uuid":
                return str(value)
            if t == "bytes":
                return bytes(value) if not isinstance(value, str) else value.encode()
        except (InvalidOperation, ValueError, TypeError, AttributeError) as exc:
            raise UnsupportedValue(
                f"{col.name}: cannot store {type(value).__name__} value as {t}: {exc}", provider=self.name
            ) from None
        return value

    def _reader(self, col: Column) -> Any:
        return None if col.type in ("text", "float", "bytes") else super()._reader(col)  # `_from_db` keeps these

    def _from_db(self, col: Column, value: Any) -> Any:
        t = col.type
        if t == "decimal":
            return Decimal(value) if isinstance(value, str) else Decimal(str(value))
        if t == "timestamp":
            if isinstance(value, (int, float)):
                return dt.datetime.fromtimestamp(value, dt.timezone.utc)
            return canonical.utc(dt.datetime.fromisoformat(value))
        if t == "date":
            return dt.date.fromisoformat(value) if isinstance(value, str) else value
        if t == "json":
            return json.loads(value) if isinstance(value, (str, bytes)) else value
        if t == "boolean":
            return bool(value)
        if t == "uuid":
            return str(uuid.UUID(str(value))) if value else value
        if t == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        return value

    def _filter_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        if col.type == "decimal":
            return sa.cast(table.c[col.name], sa.Float)
        return table.c[col.name]

    def _like(self, expr: sa.ColumnElement[Any], pattern: str, *, fold: bool) -> sa.ColumnElement[bool]:
        """GLOB, not LIKE: SQLite's LIKE ignores the case of ASCII letters only; GLOB is case-sensitive, and `ilike`
        becomes `[xX]` classes (adapters/query.py), so both mean what they mean on the other providers."""
        return expr.op("GLOB")(like_glob(pattern, fold=fold))

    @contextmanager
    def _read_only(self, conn: sa.Connection, on: bool) -> Iterator[None]:
        if not on:
            yield
            return
        conn.exec_driver_sql("PRAGMA query_only = ON")
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA query_only = OFF")

    def _filter_value(self, col: Column, value: Any) -> Any:
        if col.type == "decimal":
            return float(value)
        return self._to_db(col, value)

    # -- write freeze --------------------------------------------------------------------------------------------------
    def _trigger(self, table: str, op: str) -> str:
        return f"_shiftover_freeze_{table}_{op.lower()}"

    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        prep = self.engine.dialect.identifier_preparer
        message = f"BACKEND_010: writes are frozen by Shiftover ({reason})".replace("'", "")
        with self._conn() as conn:
            for name in names:
                for op in _FREEZE_OPS:
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {prep.quote(self._trigger(name, op))} "
                        f"BEFORE {op} ON {prep.quote(name)} BEGIN SELECT RAISE(ABORT, '{message}'); END"
                    )

    def unfreeze(self, names: Sequence[str]) -> None:
        prep = self.engine.dialect.identifier_preparer
        with self._conn() as conn:
            for name in names:
                for op in _FREEZE_OPS:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {prep.quote(self._trigger(name, op))}")

    def frozen(self) -> list[str]:
        with self._conn() as conn:
            rows = conn.execute(
                sa.text("SELECT DISTINCT tbl_name FROM sqlite_master WHERE type='trigger' AND name LIKE :p"),
                {"p": "_shiftover_freeze_%"},
            ).all()
        return sorted(r[0] for r in rows)

    # -- change capture ------------------------------------------------------------------------------------------------
    # AFTER INSERT/UPDATE/DELETE triggers per captured table write (table, key, op) to `_shiftover_changes` in the
    # writer's transaction. SQLite serialises writers, so entries commit in sequence order. Entries are deleted when
    # acknowledged. Writers that bypass triggers (none in SQLite itself) would not be seen.
    def _capture_trigger(self, table: str, op: str) -> str:
        return f"_shiftover_capture_{table}_{op.lower()}"

    def capture_start(self, names: Sequence[str]) -> None:
        prep = self.engine.dialect.identifier_preparer
        log = prep.quote("_shiftover_changes")
        with self._conn() as conn:
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {log} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                                 "tbl TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL)")
            for name in names:
                keys = self.key_of(name)
                tbl = "'" + name.replace("'", "''") + "'"
                new = "json_array(" + ", ".join(f"NEW.{prep.quote(k)}" for k in keys) + ")"
                old = "json_array(" + ", ".join(f"OLD.{prep.quote(k)}" for k in keys) + ")"
                bodies = {
                    "INSERT": f"INSERT INTO {log} (tbl, key, op) VALUES ({tbl}, {new}, 'upsert');",
                    "UPDATE": f"INSERT INTO {log} (tbl, key, op) VALUES ({tbl}, {new}, 'upsert'); "
                              f"INSERT INTO {log} (tbl, key, op) SELECT {tbl}, {old}, 'delete' WHERE {old} <> {new};",
                    "DELETE": f"INSERT INTO {log} (tbl, key, op) VALUES ({tbl}, {old}, 'delete');",
                }
                for op, body in bodies.items():
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {prep.quote(self._capture_trigger(name, op))} "
                        f"AFTER {op} ON {prep.quote(name)} BEGIN {body} END")

    def _has_log(self, conn: sa.Connection) -> bool:
        found = conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_shiftover_changes'"))
        return found.first() is not None

    def capture_read(self, name: str, after_seq: int = 0, limit: int = 1000) -> list[Change]:
        schema = self.schema(name)
        cols = [schema.column(k) for k in self.key_of(name)]
        with self._conn() as conn:
            if not self._has_log(conn):
                return []
            rows = conn.execute(sa.text("SELECT seq, key, op FROM _shiftover_changes WHERE tbl = :t AND seq > :s "
                                        "ORDER BY seq LIMIT :n"), {"t": name, "s": after_seq, "n": limit}).all()
        out = []
        for seq, key_text, op in rows:
            values = json.loads(key_text)
            key = tuple(None if v is None else self._from_db(c, v) for c, v in zip(cols, values, strict=True))
            out.append(Change(int(seq), key, op))
        return out

    def capture_ack(self, name: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        log = sa.table("_shiftover_changes", sa.column("seq"), sa.column("tbl"))
        with self._conn() as conn:
            for start in range(0, len(seqs), 500):
                conn.execute(sa.delete(log).where(log.c.tbl == name, log.c.seq.in_(list(seqs[start:start + 500]))))

    def capture_pending(self, name: str) -> int:
        with self._conn() as conn:
            if not self._has_log(conn):
                return 0
            stmt = sa.text("SELECT count(*) FROM _shiftover_changes WHERE tbl = :t")
            return conn.execute(stmt, {"t": name}).scalar_one()

    def capture_stop(self, names: Sequence[str]) -> None:
        prep = self.engine.dialect.identifier_preparer
        with self._conn() as conn:
            for name in names:
                for op in _FREEZE_OPS:
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {prep.quote(self._capture_trigger(name, op))}")
                if self._has_log(conn):
                    conn.execute(sa.text("DELETE FROM _shiftover_changes WHERE tbl = :t"), {"t": name})
            if not self._capturing(conn) and self._has_log(conn):
                conn.exec_driver_sql(f"DROP TABLE {prep.quote('_shiftover_changes')}")

    def _capturing(self, conn: sa.Connection) -> list[str]:
        rows = conn.execute(sa.text("SELECT DISTINCT tbl_name FROM sqlite_master WHERE type='trigger' AND "
                                    "substr(name, 1, 19) = '_shiftover_capture_'")).all()
        return sorted(r[0] for r in rows)

    def capturing(self) -> list[str]:
        with self._conn() as conn:
            return self._capturing(conn)

    def installed(self) -> list[Installed]:
        """Shiftover's triggers and tables in this file.

        SQLite has no roles: whoever can write the file can drop them."""
        with self._conn() as conn:
            rows = conn.execute(sa.text("SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('trigger', "
                                        "'table') AND substr(name, 1, 10) = '_shiftover' ORDER BY 1, 3, 2")).all()
        found = []
        for kind, name, table in rows:
            if name.startswith("_shiftover_realtime"):  # backend.realtime's triggers and log (adapters/realtime)
                found.append(Installed("realtime", "realtime trigger" if kind == "trigger" else "realtime log", name,
                                       table if kind == "trigger" else None))
            elif kind == "trigger":
                group = "freeze" if name.startswith("_shiftover_freeze_") else "capture"
                found.append(Installed(group, f"{group} trigger", name, table))  # type: ignore[arg-type]
            else:
                group, what = {"_shiftover_changes": ("capture", "change log"),
                               "_shiftover_canary": ("canary", "canary table")}.get(name, ("capture", "table"))
                found.append(Installed(group, what, name))  # type: ignore[arg-type]
        return found

    @contextmanager
    def bypass_freeze(self):  # type: ignore[no-untyped-def]
        """Drops the freeze triggers inside this block's transaction and restores them before it commits; SQLite's
        write lock (BEGIN IMMEDIATE) keeps every other client out meanwhile, so no one else sees them gone."""
        with self.transaction():
            with self._conn() as conn:
                saved = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type='trigger' AND "
                                             "substr(name, 1, 18) = '_shiftover_freeze_'")).all()
                prep = self.engine.dialect.identifier_preparer
                for name, _ in saved:
                    conn.exec_driver_sql(f"DROP TRIGGER {prep.quote(name)}")
            yield self
            with self._conn() as conn:
                for _, ddl in saved:
                    conn.exec_driver_sql(ddl)
