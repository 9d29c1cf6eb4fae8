"""What the SQL engines share (SQLAlchemy 2 Core): reflection, keyset scans, upserts, CRUD, transactions.

Engine modules (postgres.py, sqlite.py) supply the type mapping, value conversion, driver-error translation and the
engine-side write freeze. Identifiers always go through SQLAlchemy's quoting; nothing is formatted into SQL text.
"""

from __future__ import annotations

import abc
import datetime as dt
import functools
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import sqlalchemy as sa
from pydantic import Field

from shiftover.adapters.base import Adapter, CollectionSchema, Column, Filter, Key, KeyRange, Record, SqlResult
from shiftover.adapters.errors import CollectionNotFound, InvalidRequest
from shiftover.adapters.query import Order, check_window

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge,
}


class NamedType(sa.types.UserDefinedType):
    """A column type written into DDL and casts exactly as given (`numeric(10,2)`, `DECIMAL_TEXT`, `text[]`)."""

    cache_ok = True

    def __init__(self, text: str) -> None:
        self.text = text

    def get_col_spec(self, **kw: Any) -> str:
        return self.text


class SqlAdapter(Adapter):
    class Options(Adapter.Options):
        updated_at_column: str = Field("updated_at", description="column whose value tells changes(since)")
        pool_size: int = Field(2, ge=1)
        connect_timeout_s: float = Field(5.0, gt=0)

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._engine: sa.Engine | None = None
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, CollectionSchema] = {}
        self._local = threading.local()

    # -- engine hooks ------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _make_engine(self) -> sa.Engine: ...

    @abc.abstractmethod
    def _errors(self) -> Any:
        """A context manager translating driver errors to shiftover.adapters.errors."""

    @abc.abstractmethod
    def _canonical_column(self, info: dict[str, Any]) -> Column: ...

    @abc.abstractmethod
    def _sa_type(self, col: Column) -> sa.types.TypeEngine: ...

    @abc.abstractmethod
    def _insert(self, table: sa.Table) -> Any: ...

    def _to_db(self, col: Column, value: Any) -> Any:
        return value

    def _from_db(self, col: Column, value: Any) -> Any:
        return value

    def _column_infos(self, insp: Any, name: str) -> list[dict[str, Any]]:
        return insp.get_columns(name, schema=self.schema_name)

    def _key_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        return table.c[col.name]

    def _filter_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        return table.c[col.name]

    schema_name: str | None = None

    # -- plumbing -----------------------------------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            with self._errors():
                self._engine = self._make_engine()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _conn(self) -> Iterator[sa.Connection]:
        """The connection of the current transaction, or a new transaction that nested calls share."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._errors(), self.engine.begin() as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        with self._conn():
            yield self

    def _probe(self, *, canary: bool) -> list[str]:
        checks = ["connect", "read"]
        with self._conn() as conn:
            conn.execute(sa.select(sa.literal(1))).scalar_one()
        if canary:
            schema = CollectionSchema(
                "_shiftover_canary", (Column("id", "text", False), Column("at", "timestamp")), ("id",)
            )
            self.create_collection(schema)
            rec = {"id": f"probe-{threading.get_ident()}", "at": dt.datetime.now(dt.timezone.utc)}
            self.upsert(schema.name, [rec])
            if self.get(schema.name, (rec["id"],)) is None:
                raise InvalidRequest("canary record written but not read back", provider=self.name)
            self.delete(schema.name, [(rec["id"],)])
            checks += ["write", "delete"]
        return checks

    # -- catalogue ----------------------------------------------------------------------------------------------------
    def collections(self) -> list[str]:
        with self._conn() as conn:
            names = sa.inspect(conn).get_table_names(schema=self.schema_name)
        return sorted(n for n in names if not n.startswith("_shiftover"))

    def schema(self, name: str) -> CollectionSchema:
        if name in self._schemas:
            return self._schemas[name]
        with self._conn() as conn:
            insp = sa.inspect(conn)
            if not insp.has_table(name, schema=self.schema_name):
                raise CollectionNotFound(
                    f"no table {name!r}", hint="check the collection name (shiftover migrate --dry-run lists them)",
                    provider=self.name,
                )
            cols = tuple(self._canonical_column(info) for info in self._column_infos(insp, name))
            key = tuple(insp.get_pk_constraint(name, schema=self.schema_name).get("constrained_columns") or ())
        result = CollectionSchema(name, cols, key)
        self._schemas[name] = result
        return result

    def key_of(self, name: str) -> tuple[str, ...]:
        key = self.schema(name).key
        if not key:
            raise InvalidRequest(
                f"table {name!r} has no primary key, so it cannot be copied or compared by key",
                hint="add a primary key to it, or leave it out with --collections",
                provider=self.name,
            )
        return key

    def table(self, name: str) -> sa.Table:
        if name not in self._tables:
            schema = self.schema(name)
            self._tables[name] = self._build_table(schema)
        return self._tables[name]

    def _build_table(self, schema: CollectionSchema) -> sa.Table:
        cols = [
            sa.Column(c.name, self._sa_type(c), primary_key=c.name in schema.key,
                      nullable=c.nullable or c.name in schema.key)
            for c in schema.columns
        ]
        return sa.Table(schema.name, sa.MetaData(), *cols, schema=self.schema_name)

    def create_collection(self, schema: CollectionSchema) -> None:
        table = self._build_table(schema)
        with self._conn() as conn:
            table.create(conn, checkfirst=True)
        self._forget(schema.name)

    def _forget(self, name: str) -> None:
        """Drop what this adapter cached of `name` (after DDL on it)."""
        self._schemas.pop(name, None)
        self._tables.pop(name, None)

    def drop_collection(self, name: str) -> None:
        with self._conn() as conn:
            sa.Table(name, sa.MetaData(), schema=self.schema_name).drop(conn, checkfirst=True)
        self._forget(name)

    def count(self, name: str) -> int:
        table = self.table(name)
        with self._conn() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    # -- rows ----------------------------------------------------------------------------------------------------------
    def _reader(self, col: Column) -> Callable[[Any], Any] | None:
        """The conversion of a column's non-null values read from the engine; None when they are kept as they are.
        Chosen once per column, so a scan does not dispatch on the type for every value."""
        return functools.partial(self._from_db, col)

    def _rows(self, schema: CollectionSchema, result: sa.CursorResult[Any]) -> list[Record]:
        names = schema.names
        readers = [(c.name, f) for c in schema.columns if (f := self._reader(c)) is not None]
        out = [dict(zip(names, row, strict=True)) for row in result]
        for name, read in readers:
            for rec in out:
                if (v := rec[name]) is not None:
                    rec[name] = read(v)
        return out

    def _db_row(self, schema: CollectionSchema, record: Record) -> dict[str, Any]:
        out = {}
        for c in schema.columns:
            if c.name in record:
                v = record[c.name]
                out[c.name] = None if v is None else self._to_db(c, v)
        return out

    def _key_tuple(self, table: sa.Table, schema: CollectionSchema) -> sa.ColumnElement[Any]:
        exprs = [self._key_expr(table, schema.column(k)) for k in schema.key]
        return exprs[0] if len(exprs) == 1 else sa.tuple_(*exprs)

    def _key_value(self, schema: CollectionSchema, key: Key) -> Any:
        vals = [self._to_db(schema.column(k), v) for k, v in zip(schema.key, key, strict=True)]
        return vals[0] if len(vals) == 1 else sa.tuple_(*[sa.literal(v) for v in vals])

    def _range_where(self, name: str, after: Key | None, until: Key | None) -> list[sa.ColumnElement[bool]]:
        return self._range_where_on(self.table(name), name, after, until)

    def _range_where_on(self, table: sa.Table, name: str, after: Key | None,
                        until: Key | None) -> list[sa.ColumnElement[bool]]:
        """The key range of `name` as conditions on `table` (this collection's table, or a copy of its definition
        under another schema, such as an attached database)."""
        schema = self.schema(name)
        self.key_of(name)
        kt = self._key_tuple(table, schema)
        where = []
        if after is not None:
            where.append(kt > self._key_value(schema, after))
        if until is not None:
            where.append(kt <= self._key_value(schema, until))
        return where

    def _ordered(self, name: str) -> list[sa.ColumnElement[Any]]:
        table, schema = self.table(name), self.schema(name)
        return [self._key_expr(table, schema.column(k)) for k in self.key_of(name)]

    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        table, schema = self.table(name), self.schema(name)
        stmt = (sa.select(*table.c).where(*self._range_where(name, after, until))
                .order_by(*self._ordered(name)).limit(limit))
        with self._conn() as conn:
            return self._rows(schema, conn.execute(stmt))

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        table, schema = self.table(name), self.schema(name)
        order = self._ordered(name)
        keys = [table.c[k] for k in schema.key]
        rn = sa.func.row_number().over(order_by=order).label("_rn")
        inner = sa.select(*keys, rn).subquery()
        stmt = sa.select(*[inner.c[k] for k in schema.key]).where(inner.c._rn % every == 0).order_by(inner.c._rn)
        with self._conn() as conn:
            rows = conn.execute(stmt).all()
        cols = [schema.column(k) for k in schema.key]
        return [tuple(self._from_db(c, v) for c, v in zip(cols, row, strict=True)) for row in rows]

    def count_range(self, name: str, rng: KeyRange) -> int:
        stmt = sa.select(sa.func.count()).select_from(self.table(name)).where(*self._range_where(name, rng.lo, rng.hi))
        with self._conn() as conn:
            return conn.execute(stmt).scalar_one()

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        table, schema = self.table(name), self.schema(name)
        column = self.options.updated_at_column
        if column not in table.c:
            raise InvalidRequest(
                f"table {name!r} has no {column!r} column, so changes since a watermark cannot be read",
                hint="add an updated_at timestamp column or set options.updated_at_column",
                provider=self.name,
            )
        stmt = sa.select(*table.c).order_by(table.c[column], *self._ordered(name)).limit(limit)
        if since is not None:
            stmt = stmt.where(table.c[column] > self._to_db(schema.column(column), since))
        with self._conn() as conn:
            return self._rows(schema, conn.execute(stmt))

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        if not records:
            return 0
        table, schema = self.table(name), self.schema(name)
        for field_name in self.key_of(name):
            if any(r.get(field_name) is None for r in records):
                raise InvalidRequest(f"a record for {name!r} lacks its key field {field_name!r}",
                                     hint="every record must carry its primary key", provider=self.name)
        rows = [self._db_row(schema, r) for r in records]
        stmt = self._insert(table)
        non_key = [c for c in rows[0] if c not in schema.key]
        if non_key:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(schema.key), set_={c: stmt.excluded[c] for c in non_key}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(schema.key))
        with self._conn() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        if not keys:
            return 0
        table, schema = self.table(name), self.schema(name)
        cols = [schema.column(k) for k in self.key_of(name)]
        deleted = 0
        with self._conn() as conn:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                if len(cols) == 1:
                    cond = table.c[cols[0].name].in_([self._to_db(cols[0], k[0]) for k in part])
                else:
                    cond = sa.tuple_(*[table.c[c.name] for c in cols]).in_(
                        [tuple(self._to_db(c, v) for c, v in zip(cols, k, strict=True)) for k in part]
                    )
                deleted += conn.execute(sa.delete(table).where(cond)).rowcount
        return deleted

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        with self.transaction():
            with self._conn() as conn:
                conn.execute(sa.delete(self.table(name)).where(*self._range_where(name, rng.lo, rng.hi)))
            return self.upsert(name, records)

    def find(
        self,
        name: str,
        where: Sequence[Filter] = (),
        *,
        order_by: Order = (),
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Record]:
        check_window(offset, limit)
        table, schema = self.table(name), self.schema(name)
        stmt = sa.select(*table.c).where(*self._conditions(name, where))
        for field, direction in order_by:
            expr = self._order_expr(table, self._field(name, field))
            stmt = stmt.order_by(expr.desc().nulls_last() if direction == "desc" else expr.asc().nulls_first())
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        with self._conn() as conn:
            return self._rows(schema, conn.execute(stmt))

    def count_matching(self, name: str, where: Sequence[Filter]) -> int:
        if not self.served_natively(name):
            return super().count_matching(name, where)
        stmt = sa.select(sa.func.count()).select_from(self.table(name)).where(*self._conditions(name, where))
        with self._conn() as conn:
            return conn.execute(stmt).scalar_one()

    def update_where(self, name: str, where: Sequence[Filter], changes: Record) -> int:
        if not self.served_natively(name):
            return super().update_where(name, where, changes)
        self._refuse_key_changes(name, changes)
        for field in changes:
            self._field(name, field)
        table, conds = self.table(name), self._conditions(name, where)
        if not changes:
            return self.count_matching(name, where)
        stmt = sa.update(table).where(*conds).values(self._db_row(self.schema(name), changes))
        with self._conn() as conn:
            return conn.execute(stmt).rowcount

    def delete_where(self, name: str, where: Sequence[Filter]) -> int:
        if not self.served_natively(name):
            return super().delete_where(name, where)
        stmt = sa.delete(self.table(name)).where(*self._conditions(name, where))
        with self._conn() as conn:
            return conn.execute(stmt).rowcount

    def sql(self, statement: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> SqlResult:
        """`statement` with `:name` placeholders bound to `params` by the driver (never formatted into the text); with
        read_only the engine refuses writes (PostgreSQL: a READ ONLY transaction; SQLite: query_only)."""
        with self._conn() as conn, self._read_only(conn, read_only):
            result = conn.execute(sa.text(statement), params or {})
            if result.returns_rows:
                rows = [dict(row._mapping) for row in result]
                return SqlResult(rows, len(rows))
            return SqlResult([], result.rowcount)

    @contextmanager
    def _read_only(self, conn: sa.Connection, on: bool) -> Iterator[None]:
        """Writes refused by the engine for the block (engines override)."""
        yield

    # -- filters as SQLAlchemy expressions (identifiers quoted by SQLAlchemy, values bound) ---------------------------
    def _field(self, name: str, field: str) -> Column:
        if field not in self.table(name).c:
            raise InvalidRequest(f"{name!r} has no field {field!r}", provider=self.name)
        return self.schema(name).column(field)

    def _conditions(self, name: str, where: Sequence[Filter]) -> list[sa.ColumnElement[bool]]:
        table = self.table(name)
        return [self._condition(table, self._field(name, f.field), f) for f in where]

    def _condition(self, table: sa.Table, col: Column, f: Filter) -> sa.ColumnElement[bool]:
        expr = self._filter_expr(table, col)
        null = f.null_test
        if null is not None:
            return expr.is_(None) if null else expr.is_not(None)
        if f.op == "in":
            return expr.in_([self._filter_value(col, v) for v in f.value if v is not None])
        if f.op in ("like", "ilike"):
            if col.type != "text":
                raise InvalidRequest(f"{f.op!r} works on text fields; {col.name!r} is {col.type}",
                                     hint="compare it with eq/lt/gt/in instead", provider=self.name)
            return self._like(table.c[col.name], f.value, fold=f.op == "ilike")
        if col.type == "text" and f.op not in ("eq", "ne"):
            expr = self._key_expr(table, col)  # text ranges in code-point order, as keys are compared
        return _COMPARE[f.op](expr, self._filter_value(col, f.value))

    def _like(self, expr: sa.ColumnElement[Any], pattern: str, *, fold: bool) -> sa.ColumnElement[bool]:
        return expr.ilike(pattern, escape="\\") if fold else expr.like(pattern, escape="\\")

    def _order_expr(self, table: sa.Table, col: Column) -> sa.ColumnElement[Any]:
        return self._key_expr(table, col) if col.type == "text" else self._filter_expr(table, col)

    def _filter_value(self, col: Column, value: Any) -> Any:
        return self._to_db(col, value)
