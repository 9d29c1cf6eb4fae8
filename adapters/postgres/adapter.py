"""PostgreSQL through SQLAlchemy 2 and psycopg 3. URL: `postgresql+psycopg://user:password@host:5432/db`
(`postgresql://` is accepted and means the same); options.schema picks the schema (default public).

Sessions run in UTC, intervals print as ISO 8601. Every column type maps to a canonical one (postgres/types.py);
the column keeps its native type for same-engine copies and a move back. PostgreSQL → PostgreSQL copies stream binary
COPY between the two servers (text COPY when the column types differ); digests are computed in the server (per-field
hashes of each row, or its text form where a type has no hash), so nothing is pulled to the client to compare two
PostgreSQL tables. The write freeze and its bypass are in pg_guard.py, change capture in pg_capture.py, the schema
around the rows in pg_schema.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects import postgresql as pg

from shiftover.adapters import canonical
from shiftover.adapters.base import Capabilities, CollectionSchema, Column, Key
from shiftover.adapters.errors import (
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
from shiftover.adapters.postgres import forms as pg_forms
from shiftover.adapters.postgres import types as pg_types
from shiftover.adapters.postgres.capture import ChangeCapture
from shiftover.adapters.postgres.guard import FreezeGuard
from shiftover.adapters.postgres.native import NativePaths
from shiftover.adapters.sql import NamedType, SqlAdapter

FAMILY = "postgresql"


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


class PostgresAdapter(FreezeGuard, ChangeCapture, NativePaths, SqlAdapter):
    kind = "postgresql"
    driver_modules = ("psycopg", "sqlalchemy.dialects.postgresql.psycopg")
    offers = Capabilities(
        transactions=True, bulk_copy=FAMILY, digest_pushdown=FAMILY, engine_freeze=True,
        change_feed="updated_at column", capture="row triggers into a change-log table", raw_sql=True,
    )

    class Options(SqlAdapter.Options):
        db_schema: str = Field("public", alias="schema", description="the schema whose tables are the collections")
        lock_timeout_s: float = Field(10, gt=0, description="how long installing a freeze may wait for writers")
        app_role: str | None = Field(
            None, description="the database role the application writes as (e.g. authenticated on Supabase): the "
            "cutover gate tries the app's next insert as this role; the migration's role must be a member of it")
        capture_method: Literal["trigger", "logical"] = Field(
            "trigger", description="how live migrations see changes: row triggers into a change-log table, or "
            "logical decoding (test_decoding slot; needs wal_level=logical; no trigger on the app's tables)")

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._methods: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._hash_exprs: dict[tuple[str, tuple[str, ...]], Any] = {}  # psycopg.sql.Composable per (table, columns)
        self._types: dict[int, Any] = {}  # type oid → (pg_types.TypeMapping, definition)

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
        engine = sa.create_engine(
            sa_url,
            pool_size=self.options.pool_size,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, int(self.options.connect_timeout_s)),
                          "options": "-c timezone=UTC -c IntervalStyle=iso_8601"},  # intervals read as ISO 8601
            json_serializer=lambda v: json.dumps(canonical.jsonable(v), ensure_ascii=False),
        )
        sa.event.listen(engine, "before_cursor_execute", _keyed_insert, retval=True)
        return engine

    @contextmanager
    def _errors(self) -> Iterator[None]:
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

    def _translate(self, exc: BaseException | None) -> BackendError:
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
        if state.startswith("22") or isinstance(exc, psycopg.DataError):  # or a value Python cannot hold
            return UnsupportedValue(text, provider=self.name)
        return InvalidRequest(f"PostgreSQL refused the statement: {text}", provider=self.name)

    # -- types (adapters/postgres/types.py: every PostgreSQL type maps; none is refused) -------------------------------
    def _column_infos(self, insp: Any, name: str) -> list[dict[str, Any]]:
        rows = insp.bind.execute(pg_types.COLUMNS, {"table": self._qualified_text(name)}).all()
        keys = ("name", "nullable", "oid", "format", "precision", "scale")
        return [{"column": pg_types.column(dict(zip(keys, r, strict=True)), insp.bind, self._types)} for r in rows]

    def _canonical_column(self, info: dict[str, Any]) -> Column:
        return info["column"]

    def _sa_type(self, col: Column) -> sa.types.TypeEngine:
        form = pg_types.form_of(col)
        if form is not None:
            return pg_forms.Formed(col.native.split(":", 1)[1], form,  # type: ignore[union-attr]
                                   pg_types.definition_of(col.native_def).get("element"))
        types: dict[str, sa.types.TypeEngine[Any]] = {
            "integer": sa.BigInteger(),
            "decimal": sa.Numeric(col.precision, col.scale) if col.precision else sa.Numeric(),
            "float": pg.DOUBLE_PRECISION(),
            "text": sa.Text(),
            "boolean": sa.Boolean(),
            "timestamp": sa.TIMESTAMP(timezone=True),
            "date": sa.Date(),
            "json": pg.JSONB(none_as_null=True),
            "bytes": pg.BYTEA(),
            "uuid": sa.Uuid(as_uuid=False),
        }
        return types[col.type]

    def _ddl_type(self, col: Column) -> sa.types.TypeEngine:
        if col.native and col.native.startswith(FAMILY + ":"):
            return NamedType(col.native.split(":", 1)[1])
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
            quoted = self.engine.dialect.identifier_preparer.quote_identifier(self.schema_name)
            if conn.execute(sa.text("SELECT to_regnamespace(:s) IS NULL"), {"s": quoted}).scalar():
                # not CREATE SCHEMA IF NOT EXISTS: it needs CREATE on the database even when the schema exists
                conn.execute(sa.schema.CreateSchema(self.schema_name))
            with conn.connection.driver_connection.cursor() as cur:  # enum/domain/composite types a move back needs
                pg_types.ensure_types(cur, schema.columns)
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
        return pg.insert(table).execution_options(shiftover_keyed=True)

    def _to_db(self, col: Column, value: Any) -> Any:
        if pg_types.form_of(col) is not None:
            return pg_forms.dump(col, value)
        if col.type == "json":
            return canonical.jsonable(value)
        if col.type == "uuid":
            return str(value)
        if col.type == "timestamp" and hasattr(value, "tzinfo"):
            return canonical.utc(value)
        return value

    def _from_db(self, col: Column, value: Any) -> Any:
        if pg_types.form_of(col) is not None:
            return pg_forms.load(col, value)
        if col.type == "timestamp":
            return canonical.utc(value)
        if col.type == "uuid" and isinstance(value, uuid.UUID):
            return str(value)
        if col.type == "bytes" and isinstance(value, memoryview):
            return bytes(value)
        return value

    def _reader(self, col: Column) -> Any:
        if pg_types.form_of(col) is None and col.type not in ("timestamp", "uuid", "bytes"):
            return None  # `_from_db` returns these values as psycopg loads them
        return super()._reader(col)

    @contextmanager
    def _read_only(self, conn: sa.Connection, on: bool) -> Iterator[None]:
        if on:  # the first statement of the block's transaction (inside a longer transaction, before its first query)
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        yield

    def _key_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        expr = table.c[col.name]
        return expr.collate("C") if col.type == "text" and pg_types.form_of(col) is None else expr

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

    # -- native fast paths ---------------------------------------------------------------------------------------------
    def _raw(self):  # type: ignore[no-untyped-def]
        with self._errors():
            return self.engine.raw_connection()

    def _forget_all(self) -> None:
        """Drop everything this adapter cached of its tables (after DDL that it did not run itself: pg_restore)."""
        self._schemas.clear()
        self._tables.clear()
        self._methods.clear()
        self._hash_exprs.clear()

    def bypass_session(self, cur: Any) -> None:
        """Let the current transaction of this raw cursor's connection pass Shiftover's own write freeze (the guard's
        secret copied into the transaction-local setting inside the server; see adapters/postgres/guard.py)."""
        from psycopg import sql

        from shiftover.adapters.postgres.guard import BYPASS_SETTING, GUARD

        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self._qualified_text(GUARD),))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("SELECT set_config(%s, (SELECT secret FROM {} WHERE id = 1), true)").format(
                sql.Identifier(self.schema_name, GUARD)), (BYPASS_SETTING,))

    @contextmanager
    def run_lock(self):  # type: ignore[no-untyped-def]
        """A session advisory lock keyed by this schema, on a connection of its own that is discarded afterwards (so
        the lock goes with it, whatever happened)."""
        raw = self._raw()
        try:
            with self._errors(), raw.driver_connection.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"shiftover run lock {self.schema_name}",))
                got = bool(cur.fetchone()[0])
                raw.driver_connection.commit()
            yield got
        finally:
            raw.invalidate()


def _keyed_insert(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
    """Shiftover's inserts (`_insert`) carry the source's keys: OVERRIDING SYSTEM VALUE lets them into a column
    GENERATED ALWAYS AS IDENTITY, which would refuse them otherwise (a table without one accepts the clause)."""
    if context is not None and context.execution_options.get("shiftover_keyed") and statement.startswith("INSERT"):
        head, sep, tail = statement.partition(") VALUES ")
        if sep:
            statement = f"{head}) OVERRIDING SYSTEM VALUE VALUES {tail}"
    return statement, parameters


