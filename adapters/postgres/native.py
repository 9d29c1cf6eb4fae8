"""PostgreSQL's native fast paths, mixed into PostgresAdapter: binary COPY of a key range from another PostgreSQL
(COPY TO STDOUT piped into COPY FROM STDIN, no Python per row), and digests computed in the engine (each column by
its type's own hash, summed per key range), so neither a copy nor a measurement builds canonical records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, CollectionSchema, Column, KeyRange, RangeDigest
from shiftover.adapters.postgres import types as pg_types


class NativePaths:
    """copy_range_from and pushdown digests for PostgresAdapter (which provides the rest)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        engine: sa.Engine
        schema_name: str
        _methods: dict[tuple[str, tuple[str, ...]], tuple[str, ...]]
        _hash_exprs: dict[tuple[str, tuple[str, ...]], Any]
        _schemas: dict[str, CollectionSchema]
        _tables: dict[str, sa.Table]
        _errors: Callable[[], AbstractContextManager[None]]
        def _raw(self) -> Any: ...
        def _qualified_text(self, name: str) -> str: ...
        def _to_db(self, col: Column, value: Any) -> Any: ...
        def key_of(self, name: str) -> tuple[str, ...]: ...
        def schema(self, name: str) -> CollectionSchema: ...

    def _range_sql(self, name: str, rng: KeyRange):  # type: ignore[no-untyped-def]
        from psycopg import sql

        schema = self.schema(name)
        keys = [schema.column(k) for k in self.key_of(name)]

        def key_ident(c: Column):  # type: ignore[no-untyped-def]
            ident = sql.Identifier(c.name)
            return sql.SQL("{} COLLATE \"C\"").format(ident) if c.type == "text" and not pg_types.form_of(c) else ident

        row = sql.SQL("ROW({})").format(sql.SQL(", ").join(key_ident(c) for c in keys))
        parts = []
        for op, bound in ((">", rng.lo), ("<=", rng.hi)):
            if bound is not None:
                vals = sql.SQL(", ").join(sql.Literal(self._to_db(c, v)) for c, v in zip(keys, bound, strict=True))
                parts.append(sql.SQL("{} {} ROW({})").format(row, sql.SQL(op), vals))
        where = sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        order = sql.SQL(", ").join(key_ident(c) for c in keys)
        return where, order

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange,
                        progress: Callable[[int], None] | None = None) -> int:
        from psycopg import sql

        if not isinstance(source, NativePaths):  # mixed into PostgresAdapter only: the source is PostgreSQL
            return super().copy_range_from(source, name, rng, progress)  # type: ignore[misc]
        src_schema, dst_schema = source.schema(name), self.schema(name)
        cols = [c.name for c in src_schema.columns if c.name in dst_schema.names]
        binary = all(src_schema.column(c).native == dst_schema.column(c).native and
                     not pg_types.text_copy(src_schema.column(c)) for c in cols)
        fmt = sql.SQL("BINARY" if binary else "TEXT")
        col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        src_table = sql.Identifier(source.schema_name, name)
        dst_table = sql.Identifier(self.schema_name, name)
        src_where, order = source._range_sql(name, rng)
        dst_where = src_where  # the same key columns and types; the target's key may not exist yet (bulk copy)
        out_stmt = sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY {}) TO STDOUT (FORMAT {})").format(
            col_list, src_table, src_where, order, fmt)
        in_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(dst_table, col_list, fmt)
        src_raw, dst_raw = source._raw(), self._raw()
        try:
            with source._errors(), self._errors():
                src_conn, dst_conn = src_raw.driver_connection, dst_raw.driver_connection
                with dst_conn.cursor() as dcur:
                    _quiet_triggers(dcur)
                    dcur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(dst_table, dst_where))
                    with dcur.copy(in_stmt) as into:
                        _copy_out(src_conn, out_stmt.as_bytes(src_conn), into.write, progress=progress)
                    copied = dcur.rowcount
                dst_conn.commit()
                src_conn.rollback()
        except BaseException:
            src_raw.invalidate()  # it may be in the middle of its COPY: never hand it back to the pool
            raise
        finally:
            src_raw.close()
            dst_raw.close()
        return copied

    def pushdown_methods(self, name: str, columns: Sequence[str]) -> tuple[str, ...]:
        """The in-engine digest functions this server can apply to these columns: `column hashes`, unless the probe
        fails (a server older than PostgreSQL 11 has no extended hash functions), and then the client digests.

        `column hashes` hashes each field with its type's own extended hash function (numbers by value, jsonb by
        content, timestamptz as its UTC instant, booleans as integers), seeded by the field's position, and XORs them;
        a type without one of its own (json, varchar, arrays, enums…) hashes its text. No row is formed or printed:
        ~1.5× faster than hash_record_extended of the row, ~3× faster than hashing the row's text."""
        from psycopg import errors, sql

        key = (name, tuple(columns))
        if key not in self._methods:
            raw = self._raw()
            try:
                with self._errors(), raw.driver_connection.cursor() as cur:
                    try:
                        expr = self._column_hashes(cur, name, columns)
                        cur.execute(sql.SQL("SELECT {} FROM {} LIMIT 0").format(expr, self._qualified(name)))
                        self._methods[key] = ("column hashes",)
                        self._hash_exprs[key] = expr
                    except (errors.UndefinedFunction, errors.UndefinedObject, errors.DatatypeMismatch):
                        self._methods[key] = ()
                    raw.driver_connection.rollback()
            finally:
                raw.close()
        return self._methods[key]

    def _qualified(self, name: str):  # type: ignore[no-untyped-def]
        from psycopg import sql

        return sql.Identifier(self.schema_name, name)

    def _column_hashes(self, cur: Any, name: str, columns: Sequence[str]):  # type: ignore[no-untyped-def]
        """XOR over the columns of coalesce(hash(value, seed), seed), seed = 1 + the column's position in `columns`.
        The hash function is the default hash operator class's extended support function (number 2) when it takes
        the column's own type, as hash_record_extended would pick it."""
        from psycopg import sql

        cur.execute(
            "SELECT a.attname, t.typname, n.nspname, f.proname, a.attnotnull FROM pg_attribute a "
            "JOIN pg_type t ON t.oid = a.atttypid "
            "LEFT JOIN pg_opclass c ON c.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash') "
            "     AND c.opcdefault AND c.opcintype = a.atttypid "
            "LEFT JOIN pg_amproc p ON p.amprocfamily = c.opcfamily AND p.amprocnum = 2 "
            "     AND p.amproclefttype = a.atttypid AND p.amprocrighttype = a.atttypid "
            "LEFT JOIN pg_proc f ON f.oid = p.amproc AND f.proargtypes[0] = a.atttypid "
            "LEFT JOIN pg_namespace n ON n.oid = f.pronamespace "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (sql.Identifier(self.schema_name, name).as_string(cur),))
        found = {row[0]: row[1:] for row in cur.fetchall()}
        parts = []
        for seed, column in enumerate(columns, start=1):
            typname, nsp, fn, not_null = found[column]
            value, s = sql.Identifier(column), sql.Literal(seed)
            if typname == "timestamptz":  # its hash family's function takes timestamp: hash the UTC instant
                h = sql.SQL("pg_catalog.timestamp_hash_extended({} AT TIME ZONE 'UTC', {})").format(value, s)
            elif typname == "bool":  # its hash family's function takes "char"
                h = sql.SQL("pg_catalog.hashint4extended({}::integer, {})").format(value, s)
            elif fn is not None:
                h = sql.SQL("{}({}, {})").format(sql.Identifier(nsp, fn), value, s)
            else:  # the text form; the digest's session fixes every setting the output functions read
                h = sql.SQL("pg_catalog.hashtextextended({}::text, {})").format(value, s)
            # NULL hashes as the seed; a NOT NULL column skips the coalesce (a nullable twin computes the same values)
            parts.append(h if not_null else sql.SQL("coalesce({}, {})").format(h, s))
        return sql.SQL(" # ").join(parts)

    def pushdown_digests(self, name: str, ranges: Sequence[KeyRange], columns: Sequence[str],
                         method: str = "column hashes") -> list[RangeDigest]:
        from psycopg import sql

        if method != "column hashes":
            raise ValueError(f"unknown digest method {method!r}")
        table = self._qualified(name)
        out = []
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                # Text forms must not depend on the server's, database's or role's defaults: both sides print alike.
                cur.execute("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), "
                            "set_config('IntervalStyle', 'postgres', true), "
                            "set_config('extra_float_digits', '1', true), set_config('bytea_output', 'hex', true)")
                row_hash = self._hash_exprs.get((name, tuple(columns))) or self._column_hashes(cur, name, columns)
                for rng in ranges:
                    where, _ = self._range_sql(name, rng)
                    cur.execute(sql.SQL(  # sum(bigint) adds in 128 bits and returns numeric: exact, no overflow
                        "SELECT count(*), coalesce(sum({}), 0) FROM {} WHERE {}").format(row_hash, table, where))
                    n, total = cur.fetchone()
                    out.append(RangeDigest(rng, int(n), canonical.combine(int(total))))
                raw.driver_connection.rollback()
        finally:
            raw.close()
        return out


def _quiet_triggers(cur: Any) -> None:
    """The app's triggers and foreign-key checks do not fire for this transaction's load, where the role may say so
    (session_replication_role: a superuser, or a role granted SET on it). Tables that Shiftover creates get their
    triggers only after the load anyway; this covers tables that existed on the target before the run."""
    from psycopg import errors

    cur.execute("SAVEPOINT shiftover_quiet")
    try:
        cur.execute("SET LOCAL session_replication_role = replica")
    except errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT shiftover_quiet")
    cur.execute("RELEASE SAVEPOINT shiftover_quiet")


def _copy_out(conn: Any, query: bytes, write: Any, flush_at: int = 1 << 17,
              progress: Callable[[int], None] | None = None) -> None:
    """Run `COPY … TO STDOUT` on a psycopg connection and hand its bytes to `write` in ~128 KB blocks; `progress` hears
    the rows handed on so far at each block (libpq returns one row per call; binary COPY's header and trailer make it
    count one or two more, which the chunk's final count replaces).

    The rows are taken straight from libpq (one call per row, no generator per row) and waits for the socket release
    the GIL, so the byte pump costs a fraction of psycopg's row iterator; that matters on a small machine where the
    two PostgreSQL backends of the copy need the same cores."""
    import select

    from psycopg import OperationalError, errors, pq

    pgconn = conn.pgconn
    fd = pgconn.socket
    poll = select.poll()
    poll.register(fd, select.POLLIN)

    def result() -> Any:
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                return pgconn.get_result()
            poll.poll()

    def failed(res: Any) -> Exception:
        if res is None:
            return OperationalError(pgconn.get_error_message().decode(errors="replace"))
        return errors.error_from_result(res, encoding=conn.info.encoding)

    pgconn.send_query(query)
    while pgconn.flush():
        select.select([], [fd], [])
    _expect(result(), pq.ExecStatus.COPY_OUT, failed)
    buf = bytearray()
    get = pgconn.get_copy_data
    rows = 0
    while True:
        n, data = get(1)
        if n > 0:
            buf += data
            rows += 1
            if len(buf) >= flush_at:
                write(buf)
                buf = bytearray()
                if progress is not None:
                    progress(rows)
        elif n == 0:
            poll.poll()
            pgconn.consume_input()
        elif n == -1:
            break
        else:
            raise failed(None)
    if buf:
        write(buf)
    _expect(result(), pq.ExecStatus.COMMAND_OK, failed)
    while result() is not None:
        pass


def _expect(res: Any, status: Any, failed: Any) -> None:
    """Raise what `failed` makes of `res` unless it has this status."""
    if res is None or res.status != status:
        raise failed(res)
