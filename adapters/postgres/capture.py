"""PostgreSQL change capture for live migrations (blue_green, gradual) and rollback; mixed into PostgresAdapter.

Triggers (the default): a row trigger `_shiftover_capture` per captured table calls `_shiftover_capture()`, which
writes (table, key, op) to the change-log table `_shiftover_changes` in the same transaction as the write, so a
committed write always has its entry and a rolled-back one never does. The function is SECURITY DEFINER with
search_path `pg_catalog, pg_temp` and names the log by schema: it writes with the rights of the role that installed it,
so an app role with nothing but DML on its own tables (PostgREST's anon and authenticated, say) writes as before and
needs no right on the log. The installing role owns the function, the log and its sequence, and every other grant on
them is revoked (see pg_guard.lock_down). TRUNCATE of a captured table is refused (it fires no row triggers). Entries
are deleted when acknowledged, so an entry whose sequence number is lower than one already read (a transaction that
committed late) is still picked up by the next read. `capture_stop` of the last table drops the log and the function.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shiftover.adapters import canonical
from shiftover.adapters.base import Change, CollectionSchema, Column
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.postgres.guard import lock_down, unused_function

CAPTURE_FUNCTION = "_shiftover_capture"
LOG = "_shiftover_changes"
REGISTRY = "_shiftover_captured"


class ChangeCapture:
    """capture_* and capturing for PostgresAdapter (which provides _raw, _errors, _conn, key_of, schema, options)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        url: str | None
        options: Any

        @property
        def schema_name(self) -> str: ...
        def _raw(self) -> Any: ...
        def _errors(self) -> Any: ...
        def _conn(self) -> Any: ...
        def key_of(self, name: str) -> tuple[str, ...]: ...
        def schema(self, name: str) -> CollectionSchema: ...

    def _capture_names(self):  # type: ignore[no-untyped-def]
        from psycopg import sql

        return sql.Identifier(self.schema_name, LOG), sql.Identifier(self.schema_name, CAPTURE_FUNCTION)

    def capture_start(self, names: Sequence[str]) -> None:
        from psycopg import sql

        if self.options.capture_method == "logical":
            return self._logical_start(names)
        log, func = self._capture_names()
        body = sql.SQL(
            "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS $f$ "
            "DECLARE k jsonb := '[]'::jsonb; o jsonb := '[]'::jsonb; i int; BEGIN "
            "IF TG_OP = 'TRUNCATE' THEN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'TRUNCATE of ' || "
            "TG_TABLE_NAME || ' is refused while Shiftover captures its changes for a migration', HINT = 'delete the "
            "rows instead, or let the migration finish'; END IF; "
            "IF TG_OP IN ('INSERT', 'UPDATE') THEN FOR i IN 0 .. TG_NARGS - 1 LOOP "
            "k := k || jsonb_build_array(to_jsonb(NEW) -> TG_ARGV[i]); END LOOP; "
            "INSERT INTO {log} (tbl, key, op) VALUES (TG_TABLE_NAME, k, 'upsert'); END IF; "
            "IF TG_OP IN ('UPDATE', 'DELETE') THEN FOR i IN 0 .. TG_NARGS - 1 LOOP "
            "o := o || jsonb_build_array(to_jsonb(OLD) -> TG_ARGV[i]); END LOOP; "
            "IF TG_OP = 'DELETE' OR o <> k THEN INSERT INTO {log} (tbl, key, op) VALUES (TG_TABLE_NAME, o, 'delete'); "
            "END IF; END IF; RETURN NULL; END $f$").format(func=func, log=log)
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(self.options.lock_timeout_s * 1000)}ms")))
                self._create_log(cur)
                cur.execute(body)
                lock_down(cur, "FUNCTION", sql.SQL("{}()").format(func))
                cur.execute("SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace "
                            "n ON n.oid = c.relnamespace WHERE t.tgname = '_shiftover_capture' AND n.nspname = %s",
                            (self.schema_name,))
                have = {r[0] for r in cur.fetchall()}
                for name in names:
                    if name in have:
                        continue
                    table = sql.Identifier(self.schema_name, name)
                    keys = sql.SQL(", ").join(sql.Literal(k) for k in self.key_of(name))
                    cur.execute(sql.SQL("CREATE TRIGGER _shiftover_capture AFTER INSERT OR UPDATE OR DELETE ON {} "
                                        "FOR EACH ROW EXECUTE FUNCTION {}({})").format(table, func, keys))
                    cur.execute(sql.SQL("CREATE TRIGGER _shiftover_capture_truncate BEFORE TRUNCATE ON {} "
                                        "FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(table, func))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def _create_log(self, cur: Any) -> None:
        """The change log, readable and writable by its owner only (the capture function writes as that owner)."""
        from psycopg import sql

        log = sql.Identifier(self.schema_name, LOG)
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq bigserial PRIMARY KEY, tbl text NOT NULL, "
                            "key jsonb NOT NULL, op text NOT NULL)").format(log))
        lock_down(cur, "TABLE", log)
        cur.execute("SELECT pg_get_serial_sequence(%s, 'seq')", (log.as_string(cur),))
        seq = cur.fetchone()[0]
        if seq:
            cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.oid = %s::regclass", (seq,))
            lock_down(cur, "SEQUENCE", sql.Identifier(*cur.fetchone()))

    def _log_exists(self, conn: sa.Connection) -> bool:
        return sa.inspect(conn).has_table("_shiftover_changes", schema=self.schema_name)

    def capture_read(self, name: str, after_seq: int = 0, limit: int = 1000) -> list[Change]:
        if self.options.capture_method == "logical" and not self._logged(name, after_seq):
            self._logical_pump()  # decoding costs a pass over the WAL: only once what was pumped is consumed
        schema = self.schema(name)
        cols = [schema.column(k) for k in self.key_of(name)]
        log = sa.table("_shiftover_changes", sa.column("seq"), sa.column("tbl"), sa.column("key"), sa.column("op"),
                       schema=self.schema_name)
        stmt = (sa.select(log.c.seq, sa.cast(log.c.key, sa.Text), log.c.op)
                .where(log.c.tbl == name, log.c.seq > after_seq).order_by(log.c.seq).limit(limit))
        with self._conn() as conn:
            if not self._log_exists(conn):
                return []
            rows = conn.execute(stmt).all()
        out = []
        for seq, key_text, op in rows:
            values = json.loads(key_text, parse_float=Decimal)
            key = tuple(_capture_key_value(c, v) for c, v in zip(cols, values, strict=True))
            out.append(Change(int(seq), key, op))
        return out

    def capture_ack(self, name: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        log = sa.table("_shiftover_changes", sa.column("seq"), sa.column("tbl"), schema=self.schema_name)
        with self._conn() as conn:
            for start in range(0, len(seqs), 5000):
                conn.execute(sa.delete(log).where(log.c.tbl == name, log.c.seq.in_(list(seqs[start:start + 5000]))))

    def _logged(self, name: str, after_seq: int) -> bool:
        log = sa.table("_shiftover_changes", sa.column("seq"), sa.column("tbl"), schema=self.schema_name)
        with self._conn() as conn:
            return self._log_exists(conn) and conn.execute(
                sa.select(log.c.seq).where(log.c.tbl == name, log.c.seq > after_seq).limit(1)).first() is not None

    def capture_pending(self, name: str) -> int:
        if self.options.capture_method == "logical":
            self._logical_pump()
        log = sa.table("_shiftover_changes", sa.column("tbl"), schema=self.schema_name)
        with self._conn() as conn:
            if not self._log_exists(conn):
                return 0
            return conn.execute(sa.select(sa.func.count()).select_from(log).where(log.c.tbl == name)).scalar_one()

    def capture_stop(self, names: Sequence[str]) -> None:
        from psycopg import sql

        if self.options.capture_method == "logical":
            return self._logical_stop(names)
        log, func = self._capture_names()
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(self.options.lock_timeout_s * 1000)}ms")))
                cur.execute("SELECT to_regclass(%s) IS NOT NULL",
                            (sql.Identifier(self.schema_name, "_shiftover_changes").as_string(cur),))
                has_log = cur.fetchone()[0]
                for name in names:
                    table = sql.Identifier(self.schema_name, name)
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_capture ON {}").format(table))
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_capture_truncate ON {}").format(table))
                    if has_log:
                        cur.execute(sql.SQL("DELETE FROM {} WHERE tbl = %s").format(log), (name,))
                cur.execute("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace "
                            "n ON n.oid = c.relnamespace WHERE t.tgname = '_shiftover_capture' AND n.nspname = %s",
                            (self.schema_name,))
                if cur.fetchone()[0] == 0:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(log))
                if unused_function(cur, func):
                    cur.execute(sql.SQL("DROP FUNCTION {}()").format(func))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def capturing(self) -> list[str]:
        if self.options.capture_method == "logical":
            with self._conn() as conn:
                if not sa.inspect(conn).has_table("_shiftover_captured", schema=self.schema_name):
                    return []
                reg = sa.table("_shiftover_captured", sa.column("tbl"), schema=self.schema_name)
                return sorted(r[0] for r in conn.execute(sa.select(reg.c.tbl)))
        stmt = sa.text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = '_shiftover_capture' AND n.nspname = :s")
        with self._conn() as conn:
            return sorted(r[0] for r in conn.execute(stmt, {"s": self.schema_name}))


    # -- change capture by logical decoding ----------------------------------------------------------------------------
    # A `test_decoding` slot per schema sees every committed change in commit order without touching the app's tables.
    # Reading "pumps" the slot: peek the decoded changes, copy the captured tables' (key, op) into `_shiftover_changes`
    # and commit, then advance the slot; a crash in between re-reads a batch, which applying by key makes harmless.
    # Limits: needs wal_level=logical and a free replication slot; the slot holds WAL until dropped (capture_stop); keys
    # of deleted rows come from the replica identity (the primary key by default); TRUNCATE cannot be mapped to keys
    # and stops the capture with an error.
    def _slot(self) -> str:
        db = sa.engine.make_url(self.url or "").database or "db"
        return "shiftover_" + "".join(ch if ch.isalnum() else "_" for ch in f"{db}_{self.schema_name}".lower())[:50]

    def _logical_start(self, names: Sequence[str]) -> None:
        from psycopg import sql

        reg = sql.Identifier(self.schema_name, REGISTRY)
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute("SHOW wal_level")
                if cur.fetchone()[0] != "logical":
                    raise InvalidRequest("capture_method logical needs wal_level=logical on this server",
                                         hint="set wal_level = logical and restart PostgreSQL, or use the default "
                                              "capture_method trigger", provider=self.name)
                for name in names:
                    self.key_of(name)
                self._create_log(cur)
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (tbl text PRIMARY KEY)").format(reg))
                lock_down(cur, "TABLE", reg)
                raw.driver_connection.commit()
                cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self._slot(),))
                if cur.fetchone() is None:
                    cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (self._slot(),))
                    raw.driver_connection.commit()
                for name in names:
                    cur.execute(sql.SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(reg), (name,))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def _logical_pump(self, batch: int = 20_000) -> None:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        log = sql.Identifier(self.schema_name, "_shiftover_changes")
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                captured = set(self.capturing())
                if not captured:
                    return
                keys = {n: self.key_of(n) for n in captured}
                while True:
                    cur.execute("SELECT lsn, data FROM pg_logical_slot_peek_changes(%s, NULL, %s)",
                                (self._slot(), batch))
                    rows = cur.fetchall()
                    if not rows:
                        break
                    entries = []
                    for _lsn, data in rows:
                        change = _parse_decoded(data, self.schema_name, captured)
                        if change is None:
                            continue
                        tbl, op, old, new = change
                        if op == "TRUNCATE":
                            raise InvalidRequest(f"TRUNCATE of {tbl!r} was seen while its changes were captured",
                                                 hint="re-run the migration from the start (the capture cannot map "
                                                      "a TRUNCATE to keys)", provider=self.name)
                        cols = keys[tbl]
                        if op in ("INSERT", "UPDATE"):
                            entries.append((tbl, [new.get(c) for c in cols], "upsert"))
                        if op == "DELETE" or (op == "UPDATE" and old and [old.get(c) for c in cols] !=
                                              [new.get(c) for c in cols]):
                            entries.append((tbl, [(old or new).get(c) for c in cols], "delete"))
                    if entries:
                        cur.executemany(sql.SQL("INSERT INTO {} (tbl, key, op) VALUES (%s, %s, %s)").format(log),
                                        [(t, Jsonb(k), o) for t, k, o in entries])
                    raw.driver_connection.commit()
                    cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self._slot(), rows[-1][0]))
                    raw.driver_connection.commit()
                    if len(rows) < batch:
                        break
        finally:
            raw.close()

    def _logical_stop(self, names: Sequence[str]) -> None:
        from psycopg import sql

        log = sql.Identifier(self.schema_name, "_shiftover_changes")
        reg = sql.Identifier(self.schema_name, "_shiftover_captured")
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (reg.as_string(cur),))
                if not cur.fetchone()[0]:
                    return
                for name in names:
                    cur.execute(sql.SQL("DELETE FROM {} WHERE tbl = %s").format(reg), (name,))
                    cur.execute(sql.SQL("DELETE FROM {} WHERE tbl = %s").format(log), (name,))
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(reg))
                if cur.fetchone()[0] == 0:
                    cur.execute(sql.SQL("DROP TABLE {}, {}").format(reg, log))
                    cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                "WHERE slot_name = %s", (self._slot(),))
                raw.driver_connection.commit()
        finally:
            raw.close()



def _capture_key_value(col: Column, value: Any) -> Any:
    """A key value as `to_jsonb(row) -> column` rendered it, back to its canonical type."""
    if value is None:
        return None
    if col.type == "decimal":
        return Decimal(str(value))
    if col.type == "integer":
        return int(value)
    if col.type == "timestamp" and isinstance(value, str):
        return canonical.utc(dt.datetime.fromisoformat(value))
    if col.type == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if col.type == "bytes" and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("\\x"))
    return value


def _decoded_value(text: str, i: int) -> tuple[str | None, int]:
    if text.startswith("'", i):
        out, i = [], i + 1
        while True:
            j = text.index("'", i)
            out.append(text[i:j])
            if text.startswith("''", j):
                out.append("'")
                i = j + 2
                continue
            return "".join(out), j + 1
    j = text.find(" ", i)
    j = len(text) if j < 0 else j
    raw = text[i:j]
    return (None if raw == "null" else raw), j


def _decoded_tuple(text: str, i: int) -> tuple[dict[str, Any], int]:
    """`col[type]:value ...` as test_decoding prints a tuple, up to the end or a `new-tuple:` marker."""
    out: dict[str, Any] = {}
    while i < len(text) and not text.startswith("new-tuple:", i):
        if text.startswith('"', i):
            j = i + 1
            while True:
                j = text.index('"', j)
                if text.startswith('""', j):
                    j += 2
                    continue
                break
            name, i = text[i + 1:j].replace('""', '"'), j + 1
        else:
            j = text.index("[", i)
            name, i = text[i:j], j
        j = text.index("]:", i)
        typ, i = text[i + 1:j], j + 2
        value, i = _decoded_value(text, i)
        out[name] = int(value) if value is not None and typ in ("integer", "bigint", "smallint") else value
        while i < len(text) and text[i] == " ":
            i += 1
    return out, i


def _parse_decoded(data: str, schema: str, tables: set[str]):  # type: ignore[no-untyped-def]
    """(table, op, old key tuple or None, new tuple) of one test_decoding line for a captured table, else None."""
    if not data.startswith("table "):
        return None
    head, _, rest = data[6:].partition(": ")
    nsp, _, tbl = head.partition(".")
    tbl, nsp = tbl.strip('"').replace('""', '"'), nsp.strip('"').replace('""', '"')
    if nsp != schema or tbl not in tables:
        return None
    op, _, body = rest.partition(":")
    body = body.strip()
    if op == "TRUNCATE":
        return tbl, op, None, {}
    if body.startswith("(no-tuple-data)"):
        return None
    old = None
    if body.startswith("old-key:"):
        old, i = _decoded_tuple(body, len("old-key:") + 1)
        body = body[i + len("new-tuple:"):].strip()
    new, _ = _decoded_tuple(body, 0)
    return tbl, op, old, new
