"""PostgreSQL through SQLAlchemy 2 and psycopg 3. URL: `postgresql+psycopg://user:password@host:5432/db`
(`postgresql://` is accepted and means the same); options.schema picks the schema (default public).

Sessions run in UTC. PostgreSQL → PostgreSQL copies stream binary COPY between the two servers (text COPY when the
column types differ); digests are computed in the server (per-field hashes of each row, or its text form where a
type has no hash), so nothing is pulled to the client to compare two PostgreSQL tables. The write freeze is a statement-level trigger that rejects INSERT, UPDATE,
DELETE and TRUNCATE from every client; a session that sets `shiftover.bypass_freeze = on` passes (used by rollback).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects import postgresql as pg

from adapters import canonical
from adapters.base import Adapter, Capabilities, Change, CollectionSchema, Column, Key, KeyRange, RangeDigest
from adapters.errors import (
    AuthenticationFailed,
    BackendError,
    CollectionNotFound,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    WriteFrozen,
    redact,
    url_secrets,
)
from adapters.sql import SqlAdapter

FAMILY = "postgresql"
_TEXTUAL = (sa.String, sa.Text)


# The comment on a table created without its primary key for a bulk copy; the key's columns follow as JSON.
_KEY_LATER = "shiftover: primary key added after the bulk copy: "
# (server url without password, schema, table) → (fingerprint, reflected schema); see PostgresAdapter.schema.
_REFLECTED: dict[tuple[str, str, str], tuple[str, CollectionSchema]] = {}
_FINGERPRINT = sa.text(
    "SELECT md5(c.oid::text || '|' || string_agg(a.attnum || ':' || a.attname || ':' || a.atttypid || ':' || "
    "format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull, ',' ORDER BY a.attnum) || '|' || "
    "coalesce((SELECT p.conkey::text FROM pg_constraint p WHERE p.conrelid = c.oid AND p.contype = 'p'), '')) "
    "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE c.oid = to_regclass(:table) GROUP BY c.oid")


class PostgresAdapter(SqlAdapter):
    kind = "postgresql"
    driver_modules = ("psycopg", "sqlalchemy.dialects.postgresql.psycopg")
    capabilities = Capabilities(
        transactions=True, bulk_copy=FAMILY, digest_pushdown=FAMILY, engine_freeze=True,
        change_feed="updated_at column", capture="row triggers into a change-log table",
    )

    class Options(SqlAdapter.Options):
        db_schema: str = Field("public", alias="schema", description="the schema whose tables are the collections")
        lock_timeout_s: float = Field(10, gt=0, description="how long installing a freeze may wait for writers")
        capture_method: Literal["trigger", "logical"] = Field(
            "trigger", description="how live migrations see changes: row triggers into a change-log table, or "
            "logical decoding (test_decoding slot; needs wal_level=logical; no trigger on the app's tables)")

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._methods: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._hash_exprs: dict[tuple[str, tuple[str, ...]], Any] = {}  # psycopg.sql.Composable per (table, columns)

    @property
    def schema_name(self) -> str:  # type: ignore[override]
        return self.options.db_schema

    def schema(self, name: str) -> CollectionSchema:
        """The table's schema; reflected once per process and table shape. Reflection through SQLAlchemy's inspector
        takes tens of milliseconds and every task opens its own adapter, so the reflected schema is shared by the
        adapters of this process for as long as a one-query fingerprint of the table's columns and key is unchanged."""
        if name in self._schemas:
            return self._schemas[name]
        with self._conn() as conn:
            fingerprint = conn.execute(_FINGERPRINT, {"table": self._qualified_text(name)}).scalar()
        key = (self.engine.url.render_as_string(hide_password=True), self.schema_name, name)
        known = _REFLECTED.get(key)
        if fingerprint is not None and known is not None and known[0] == fingerprint:
            self._schemas[name] = known[1]
            return known[1]
        result = super().schema(name)  # raises CollectionNotFound for a missing table
        if fingerprint is not None:
            _REFLECTED[key] = (fingerprint, result)
        return result

    def _qualified_text(self, name: str) -> str:
        prep = self.engine.dialect.identifier_preparer
        return f"{prep.quote_identifier(self.schema_name)}.{prep.quote_identifier(name)}"

    def _password(self) -> list[str]:
        return url_secrets(self.url)

    def _make_engine(self) -> sa.Engine:
        try:
            import psycopg  # noqa: F401
        except ModuleNotFoundError:
            raise DriverMissing("psycopg is not installed", hint="pip install 'psycopg[binary]'") from None
        url = self.url or ""
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            sa_url = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise InvalidRequest("the provider's url is not a valid PostgreSQL URL",
                                 hint="postgresql+psycopg://user:password@host:5432/db", provider=self.name) from None
        return sa.create_engine(
            sa_url,
            pool_size=self.options.pool_size,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, int(self.options.connect_timeout_s)), "options": "-c timezone=UTC"},
            json_serializer=lambda v: json.dumps(canonical.jsonable(v), ensure_ascii=False),
        )

    @contextmanager
    def _errors(self):
        import psycopg

        try:
            yield
        except BackendError:
            raise
        except sa.exc.DBAPIError as exc:
            raise self._translate(exc.orig) from None
        except psycopg.Error as exc:
            raise self._translate(exc) from None
        except sa.exc.SQLAlchemyError as exc:
            raise InvalidRequest(redact(str(exc).splitlines()[0], self._password()), provider=self.name) from None

    def _translate(self, exc: BaseException) -> BackendError:
        import psycopg

        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self._password())
        state = getattr(exc, "sqlstate", None) or ""
        if "BACKEND_010" in text:
            return WriteFrozen(text.split("BACKEND_010: ", 1)[-1], hint="retry after the cutover finishes",
                               provider=self.name)
        if state == "28P01" or state == "28000" or "password authentication failed" in text:
            return AuthenticationFailed(f"PostgreSQL refused the credentials: {text}",
                                        hint="check the user and password in the provider's url", provider=self.name)
        if state == "3D000":
            return InvalidRequest(f"{text}", hint="create the database or fix the url", provider=self.name)
        if state == "42P01":
            return CollectionNotFound(text, provider=self.name)
        if state == "57014" or "timeout" in text.lower():
            return ConnectionTimeout(f"PostgreSQL did not answer in time: {text}", hint="retry; check the server load",
                                     provider=self.name)
        if state.startswith("08") or state in ("57P01", "57P02", "57P03") or isinstance(exc, psycopg.OperationalError):
            return ProviderUnavailable(f"PostgreSQL is unreachable: {text}",
                                       hint="check that the server is running and the url's host and port",
                                       provider=self.name)
        if state.startswith("22"):
            return UnsupportedValue(text, provider=self.name)
        return InvalidRequest(f"PostgreSQL refused the statement: {text}", provider=self.name)

    # -- types --------------------------------------------------------------------------------------------------------------
    def _canonical_column(self, info: dict[str, Any]) -> Column:
        t = info["type"]
        native = f"{FAMILY}:{t.compile(dialect=self.engine.dialect)}"
        precision = scale = None
        if isinstance(t, sa.Boolean):
            ctype = "boolean"
        elif isinstance(t, sa.Integer):
            ctype = "integer"
        elif isinstance(t, (sa.Float, pg.DOUBLE_PRECISION, pg.REAL)):
            ctype = "float"
        elif isinstance(t, sa.Numeric):
            ctype, precision, scale = "decimal", t.precision, t.scale
        elif isinstance(t, sa.DateTime):
            ctype = "timestamp"
        elif isinstance(t, sa.Date):
            ctype = "date"
        elif isinstance(t, (sa.JSON, pg.JSONB, pg.ARRAY)):
            ctype = "json"
        elif isinstance(t, sa.LargeBinary):
            ctype = "bytes"
        elif isinstance(t, sa.Uuid):
            ctype = "uuid"
        elif isinstance(t, _TEXTUAL) or isinstance(t, sa.Enum):
            ctype = "text"
        else:
            raise UnsupportedValue(
                f"column {info['name']!r} has type {t}, which Shiftover cannot map across engines",
                hint="cast it to text or json in a view, or leave the table out with --collections",
                provider=self.name,
            )
        return Column(info["name"], ctype, bool(info["nullable"]), precision, scale, native)

    def _sa_type(self, col: Column) -> sa.types.TypeEngine:
        return {
            "integer": sa.BigInteger(),
            "decimal": sa.Numeric(col.precision, col.scale) if col.precision else sa.Numeric(),
            "float": pg.DOUBLE_PRECISION(),
            "text": sa.Text(),
            "boolean": sa.Boolean(),
            "timestamp": sa.TIMESTAMP(timezone=True),
            "date": sa.Date(),
            "json": pg.JSONB(),
            "bytes": pg.BYTEA(),
            "uuid": sa.Uuid(as_uuid=False),
        }[col.type]

    def _ddl_type(self, col: Column) -> sa.types.TypeEngine:
        if col.native and col.native.startswith(FAMILY + ":"):
            return _Native(col.native.split(":", 1)[1])
        return self._sa_type(col)

    def create_collection(self, schema) -> None:  # type: ignore[no-untyped-def]
        self._create_table(schema, key_later=False)

    def create_for_bulk_copy(self, schema) -> None:  # type: ignore[no-untyped-def]
        """The table without its primary key (its key columns NOT NULL), marked by a comment that names the key:
        COPY then appends rows without maintaining a B-tree, and `finish_bulk_copy` builds it in one sorted pass, as
        pg_restore does (~15 % less work for the whole load)."""
        self._create_table(schema, key_later=bool(schema.key))

    def _create_table(self, schema, *, key_later: bool) -> None:  # type: ignore[no-untyped-def]
        cols = [sa.Column(c.name, self._ddl_type(c), primary_key=c.name in schema.key and not key_later,
                          nullable=c.nullable and c.name not in schema.key) for c in schema.columns]
        comment = _KEY_LATER + json.dumps(list(schema.key)) if key_later else None
        table = sa.Table(schema.name, sa.MetaData(), *cols, schema=self.schema_name, comment=comment)
        with self._conn() as conn:
            conn.execute(sa.schema.CreateSchema(self.schema_name, if_not_exists=True))
            table.create(conn, checkfirst=True)  # CREATE TABLE, and COMMENT ON TABLE, in one transaction
        self._forget(schema.name)

    def finish_bulk_copy(self, name: str) -> None:
        """Adds the primary key that `create_for_bulk_copy` left out, and drops its marker, in one transaction."""
        from psycopg import sql

        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (self._qualified_text(name),))
                row = cur.fetchone()
                note = row[0] if row else None
                if note and note.startswith(_KEY_LATER):
                    key = json.loads(note[len(_KEY_LATER):])
                    table = self._qualified(name)
                    cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                        table, sql.SQL(", ").join(sql.Identifier(k) for k in key)))
                    cur.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(table))
                raw.driver_connection.commit()
        finally:
            raw.close()
        self._forget(name)

    def _insert(self, table: sa.Table) -> Any:
        return pg.insert(table)

    def _to_db(self, col: Column, value: Any) -> Any:
        if col.type == "json":
            return canonical.jsonable(value)
        if col.type == "uuid":
            return str(value)
        if col.type == "timestamp" and hasattr(value, "tzinfo"):
            return canonical.utc(value)
        return value

    def _from_db(self, col: Column, value: Any) -> Any:
        if col.type == "timestamp":
            return canonical.utc(value)
        if col.type == "uuid" and isinstance(value, uuid.UUID):
            return str(value)
        if col.type == "bytes" and isinstance(value, memoryview):
            return bytes(value)
        return value

    def _key_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        expr = table.c[col.name]
        return expr.collate("C") if col.type == "text" else expr

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        """Every `every`-th key, exactly, for tables under ~250,000 rows (by the planner's estimate) or with a composite
        key. Larger tables take the quantiles of a repeatable ~50,000-row page sample (TABLESAMPLE SYSTEM) instead of
        numbering the whole key index: chunks come out near `every` rows each, and planning stays fast."""
        key = self.key_of(name)
        table = self.table(name)
        qualified = self._qualified_text(name)
        with self._conn() as conn:
            estimate = conn.execute(sa.select(sa.text("reltuples::bigint")).select_from(sa.text("pg_class")).where(
                sa.text("oid = to_regclass(:t)")), {"t": qualified}).scalar() or 0
        if len(key) != 1 or estimate < max(250_000, 2 * every):
            return super().key_boundaries(name, every)
        parts = -(-estimate // every)
        sample = table.tablesample(sa.func.system(min(100.0, 100.0 * 50_000 / estimate)), name="s",
                                   seed=sa.literal(0))
        col = self.schema(name).column(key[0])
        expr = sample.c[col.name].collate("C") if col.type == "text" else sample.c[col.name]
        fractions = sa.literal([i / parts for i in range(1, parts)], pg.ARRAY(sa.Float))
        stmt = sa.select(sa.func.percentile_disc(fractions).within_group(expr))
        with self._conn() as conn:
            values = conn.execute(stmt).scalar() or []
        distinct = [v for i, v in enumerate(values) if v is not None and (i == 0 or v != values[i - 1])]
        return [(self._from_db(col, v),) for v in distinct]

    # -- native fast paths --------------------------------------------------------------------------------------------------
    def _raw(self):  # type: ignore[no-untyped-def]
        with self._errors():
            return self.engine.raw_connection()

    def _range_sql(self, name: str, rng: KeyRange):  # type: ignore[no-untyped-def]
        from psycopg import sql

        schema = self.schema(name)
        keys = [schema.column(k) for k in self.key_of(name)]

        def key_ident(c: Column):  # type: ignore[no-untyped-def]
            ident = sql.Identifier(c.name)
            return sql.SQL("{} COLLATE \"C\"").format(ident) if c.type == "text" else ident

        row = sql.SQL("ROW({})").format(sql.SQL(", ").join(key_ident(c) for c in keys))
        parts = []
        for op, bound in ((">", rng.lo), ("<=", rng.hi)):
            if bound is not None:
                vals = sql.SQL(", ").join(sql.Literal(self._to_db(c, v)) for c, v in zip(keys, bound, strict=True))
                parts.append(sql.SQL("{} {} ROW({})").format(row, sql.SQL(op), vals))
        where = sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        order = sql.SQL(", ").join(key_ident(c) for c in keys)
        return where, order

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange) -> int:
        from psycopg import sql

        if not isinstance(source, PostgresAdapter):
            return super().copy_range_from(source, name, rng)
        src_schema, dst_schema = source.schema(name), self.schema(name)
        cols = [c.name for c in src_schema.columns if c.name in dst_schema.names]
        binary = all(src_schema.column(c).native == dst_schema.column(c).native for c in cols)
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
                    dcur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(dst_table, dst_where))
                    with dcur.copy(in_stmt) as into:
                        _copy_out(src_conn, out_stmt.as_bytes(src_conn), into.write)
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

    # -- write freeze -------------------------------------------------------------------------------------------------------
    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        from psycopg import sql

        func = sql.Identifier(self.schema_name, "_shiftover_write_freeze")
        body = sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
            "IF current_setting('shiftover.bypass_freeze', true) = 'on' THEN RETURN NULL; END IF; "
            "RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'BACKEND_010: writes to ' || TG_TABLE_NAME || "
            "' are frozen by Shiftover (' || TG_ARGV[0] || ')', HINT = 'retry after the cutover; the active backend "
            "is published by shiftover serve'; END $f$"
        ).format(func)
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(self.options.lock_timeout_s * 1000)}ms")))
                cur.execute(body)
                for name in names:
                    table = sql.Identifier(self.schema_name, name)
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_freeze ON {}").format(table))
                    cur.execute(sql.SQL(
                        "CREATE TRIGGER _shiftover_freeze BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION {}({})").format(table, func, sql.Literal(reason)))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def unfreeze(self, names: Sequence[str]) -> None:
        from psycopg import sql

        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                for name in names:
                    cur.execute(sql.SQL("DROP TRIGGER IF EXISTS _shiftover_freeze ON {}").format(
                        sql.Identifier(self.schema_name, name)))
                raw.driver_connection.commit()
        finally:
            raw.close()

    def frozen(self) -> list[str]:
        stmt = sa.text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = '_shiftover_freeze' AND n.nspname = :s"
        )
        with self._conn() as conn:
            return sorted(r[0] for r in conn.execute(stmt, {"s": self.schema_name}))


    # -- change capture --------------------------------------------------------------------------------------------------
    # A row trigger per captured table writes (table, key, op) to one change-log
    # table `_shiftover_changes` in the same transaction as the write, so a committed write always has its entry and a
    # rolled-back one never does. TRUNCATE of a captured table is refused (it fires no row triggers). Entries are
    # deleted when acknowledged, so an entry whose sequence number is lower than one already read (a transaction that
    # committed late) is still picked up by the next read.
    def _capture_names(self):  # type: ignore[no-untyped-def]
        from psycopg import sql

        return (sql.Identifier(self.schema_name, "_shiftover_changes"),
                sql.Identifier(self.schema_name, "_shiftover_capture"))

    def capture_start(self, names: Sequence[str]) -> None:
        from psycopg import sql

        if self.options.capture_method == "logical":
            return self._logical_start(names)
        log, func = self._capture_names()
        body = sql.SQL(
            "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $f$ "
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
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq bigserial PRIMARY KEY, tbl text NOT NULL, "
                                    "key jsonb NOT NULL, op text NOT NULL)").format(log))
                cur.execute(body)
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

    def _log_exists(self, conn: sa.Connection) -> bool:  # type: ignore[no-untyped-def]
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
                    cur.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(func))
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

    @contextmanager
    def bypass_freeze(self):  # type: ignore[no-untyped-def]
        """Writes in this block carry `shiftover.bypass_freeze = on` (transaction-local), which the freeze trigger
        lets through; every other session stays refused."""
        with self.transaction():
            with self._conn() as conn:
                conn.execute(sa.text("SELECT set_config('shiftover.bypass_freeze', 'on', true)"))
            yield self


    # -- change capture by logical decoding ------------------------------------------------------------------------------
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

        log = sql.Identifier(self.schema_name, "_shiftover_changes")
        reg = sql.Identifier(self.schema_name, "_shiftover_captured")
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
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq bigserial PRIMARY KEY, tbl text NOT NULL, "
                                    "key jsonb NOT NULL, op text NOT NULL)").format(log))
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (tbl text PRIMARY KEY)").format(reg))
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


class _Native(sa.types.UserDefinedType):
    cache_ok = True

    def __init__(self, text: str) -> None:
        self.text = text

    def get_col_spec(self, **kw: Any) -> str:
        return self.text


def _copy_out(conn: Any, query: bytes, write: Any, flush_at: int = 1 << 17) -> None:
    """Run `COPY … TO STDOUT` on a psycopg connection and hand its bytes to `write` in ~128 KB blocks.

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
    res = result()
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        raise failed(res)
    buf = bytearray()
    get = pgconn.get_copy_data
    while True:
        n, data = get(1)
        if n > 0:
            buf += data
            if len(buf) >= flush_at:
                write(buf)
                buf = bytearray()
        elif n == 0:
            poll.poll()
            pgconn.consume_input()
        elif n == -1:
            break
        else:
            raise failed(None)
    if buf:
        write(buf)
    res = result()
    if res is None or res.status != pq.ExecStatus.COMMAND_OK:
        raise failed(res)
    while result() is not None:
        pass


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
