"""Canonical records written to SQLite as row tuples: one encoder per column, chosen once from the column's type (not
by a type dispatch per value), and one `executemany` of the driver with the rows as tuples.

The stored values are exactly those of `SqliteAdapter._to_db` (tests/test_sqlite_rows.py compares them value by
value); a value an encoder cannot take is sent through `_to_db`, which raises the adapter's UnsupportedValue. The same
tuples can be hashed as `sqlite_native.digests` hashes the stored rows (`encoded_hash`), which is what lets a copy
into SQLite digest its source range from what it writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import attrgetter, itemgetter, methodcaller
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, KeyRange, Record
from shiftover.adapters.errors import InvalidRequest

if TYPE_CHECKING:
    from shiftover.adapters.sqlite.native import SqliteTables

Encoder = Callable[[Any], Any]


def _decimal(v: Any) -> str:
    """`canonical.number_text`, skipping its normalisation when `str` already gives the normalised text: no exponent,
    no trailing zero after a decimal point, not a negative zero (what most stored amounts look like)."""
    if type(v) is Decimal:
        text = str(v)
        if "E" not in text and not ("." in text and text[-1] == "0") and text != "-0":
            return text
    return canonical.number_text(v if isinstance(v, Decimal) else Decimal(str(v)))


def _timestamp(v: Any) -> str:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    return canonical.utc(v).isoformat(timespec="microseconds")


_ISO = methodcaller("isoformat", timespec="microseconds")


def _timestamps(values: list[Any]) -> list[Any]:
    """A column of timestamps: at C speed when every value is an aware UTC datetime (what PostgreSQL gives here)."""
    if None not in values and {type(v) for v in values} == {dt.datetime} and \
            set(map(attrgetter("tzinfo"), values)) == {dt.timezone.utc}:
        return list(map(_ISO, values))
    return [None if v is None else _timestamp(v) for v in values]


def _date(v: Any) -> str:
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def _json(v: Any) -> str:
    return json.dumps(canonical.jsonable(v), ensure_ascii=False)


def _plain_json(v: Any) -> str:
    """`_json` for a value known to be plain JSON with string keys (what a JSON column of a plain-JSON engine holds):
    `canonical.jsonable` changes nothing in it, so it is skipped; anything else still goes through it."""
    try:
        return json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        return _json(v)


def _bytes(v: Any) -> bytes:
    return bytes(v) if not isinstance(v, str) else v.encode()


_ENCODERS: dict[str, Encoder] = {
    "decimal": _decimal, "timestamp": _timestamp, "date": _date, "json": _json, "boolean": lambda v: 1 if v else 0,
    "uuid": str, "bytes": _bytes,
}  # integer, float and text are stored as they come


def encoder(col: Column) -> Encoder | None:
    """The function that turns a column's non-null canonical value into what SQLite stores; None: the value itself."""
    return _ENCODERS.get(col.type)


def encode(adapter: SqliteTables, schema: CollectionSchema, names: Sequence[str],
           records: Sequence[Record], *, plain_json: bool = False) -> list[tuple[Any, ...]]:
    """The records as row tuples of `names` (every record has them all), encoded column by column. `plain_json`: the
    records come from an engine whose JSON columns hold plain JSON with string keys (mapping.PLAIN_JSON_KINDS)."""
    columns = []
    for name in names:
        col = schema.column(name)
        values = list(map(itemgetter(name), records))
        fn = encoder(col)
        fn = _plain_json if plain_json and fn is _json else fn
        if fn is not None:
            try:
                values = _timestamps(values) if fn is _timestamp else [None if v is None else fn(v) for v in values]
            except Exception:  # noqa: BLE001 - _to_db raises the adapter's error, naming the column and the value
                values = [None if v is None else adapter._to_db(col, v) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def write_records(adapter: SqliteTables, name: str, records: Sequence[Any], order: Sequence[str] | None = None,
                  plain_json: bool = False) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """The adapter's upsert. Records that all carry the same fields go to the driver as tuples, encoded column by
    column, in the order of `order` if given: returns (columns, rows) as written. Others take the generic path
    (SqlAdapter.upsert, record by record through `_to_db`) and return None."""
    from shiftover.adapters.sql import SqlAdapter

    fields = records[0].keys() if records and isinstance(records[0], dict) else None
    if fields is None or not all(isinstance(r, dict) and r.keys() == fields for r in records):
        SqlAdapter.upsert(cast(SqlAdapter, adapter), name, records)  # the base path, not the caller's own
        return None
    schema, key = adapter.schema(name), adapter.key_of(name)
    for field_name in key:
        if field_name not in fields or None in map(itemgetter(field_name), records):
            raise InvalidRequest(f"a record for {name!r} lacks its key field {field_name!r}",
                                 hint="every record must carry its primary key", provider=adapter.name)
    names = [c for c in (order or schema.names) if c in fields]
    with adapter._errors():
        rows = encode(adapter, schema, names, records, plain_json=plain_json)
        write(adapter, name, names, key, rows)
    return names, rows


def replace_range_hashed(adapter: SqliteTables, name: str, rng: KeyRange, records: Sequence[Record],
                         columns: Sequence[str]) -> int:
    """SqliteAdapter.replace_range_hashed: the range replaced in one transaction, and the sum of the row hashes of
    what was written, as `sqlite_native.digests` hashes stored rows of `columns`."""
    from shiftover.adapters.sqlite import native as sqlite_native

    with adapter.transaction():
        with adapter._conn() as conn:
            conn.execute(sa.delete(adapter.table(name)).where(*adapter._range_where(name, rng.lo, rng.hi)))
        # the source is a plain-JSON engine (shiftover.tasks.migration._encoded_function's condition)
        written = write_records(adapter, name, records, columns, plain_json=True) if records else ([], [])
    if written is None or sorted(written[0]) != sorted(columns):
        rows = rows_for(adapter, adapter.schema(name), columns, records)
    else:
        rows = reordered(written[1], written[0], columns)
    return sqlite_native.rows_hash(rows)


def write(adapter: SqliteTables, name: str, names: Sequence[str], key: Sequence[str],
          rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE of row tuples, in the adapter's current transaction."""
    quote = adapter.engine.dialect.identifier_preparer.quote
    non_key = [c for c in names if c not in key]
    on_conflict = (f"DO UPDATE SET {', '.join(f'{quote(c)} = excluded.{quote(c)}' for c in non_key)}" if non_key
                   else "DO NOTHING")
    statement = (f"INSERT INTO {quote(name)} ({', '.join(map(quote, names))}) VALUES ({', '.join('?' * len(names))}) "
                 f"ON CONFLICT ({', '.join(map(quote, key))}) {on_conflict}")
    with adapter._conn() as conn:
        conn.exec_driver_sql(statement, list(rows))


# -- the source side of the stored-values digest: what a copy into SQLite writes, hashed as the target will hash it ----
def encoded_method(adapter: SqliteTables, schema: CollectionSchema, columns: Sequence[str]) -> str | None:
    """The stored-values digest method of the target table (sqlite_native.methods) when its columns are declared as
    this adapter declares `schema`'s (so each encoded value is stored as it is sent and read back as the same
    canonical value); None otherwise."""
    from shiftover.adapters.sqlite import native as sqlite_native

    declared = adapter.declared_types(schema.name)
    if sorted(schema.names) != sorted(columns) or any(
            declared.get(c.name) != cast(Any, adapter._sa_type(c)).get_col_spec().upper() for c in schema.columns):
        return None
    found = sqlite_native.methods(adapter, schema.name, columns)
    return found[0] if found else None


def rows_for(adapter: SqliteTables, schema: CollectionSchema, columns: Sequence[str],
             records: Sequence[Record]) -> list[tuple[Any, ...]]:
    """The records (from a plain-JSON engine: `encoded_method`'s condition) encoded as row tuples of `columns`; a
    field a record lacks is NULL, as it is stored."""
    full = [r if all(c in r for c in columns) else {c: r.get(c) for c in columns} for r in records]
    return encode(adapter, schema, columns, full, plain_json=True)


def reordered(rows: Sequence[tuple[Any, ...]], names: Sequence[str], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Row tuples of `names` rearranged into the order of `columns` (the same set)."""
    if list(names) == list(columns):
        return list(rows)
    pick = itemgetter(*[list(names).index(c) for c in columns])
    return [(v,) for v in map(pick, rows)] if len(columns) == 1 else list(map(pick, rows))
