"""SQLite → SQLite in the engine: a key range copied by one `INSERT … SELECT` from the source file ATTACHed to the
target's connection, and digests over the values as SQLite stores them.

Both sides store what the SQLite adapter (or the app) wrote, and the copy moves the stored values unchanged, so
comparing stored values is exact: no value is decoded to a canonical record and encoded again, which is where a
batched copy spends its time. The digest of a row is BLAKE2b over the `repr` of its stored values in a fixed column
order (`repr` of SQLite's int, float, str, bytes and None is deterministic and exact: a float's is its shortest
round-trip text, a str keeps every character, NUL included); a range's digest is the sum, so row order does not
matter. The rows reach Python as the driver makes them, and each batch is hashed by a chain of C functions (`map`
over `repr`, `encode`, BLAKE2b): no Python bytecode runs per row. SQLite's own `quote()` was measured instead (one
`group_concat` per range hashed once): no faster here, and on SQLite 3.40 it cuts a text at its first NUL. It is used
only when both tables declare the same types for the compared columns, so the same value is stored the same way on
both sides; the method's name carries a fingerprint of the declared types, and two sides that differ share no method
(the digests are then made from canonical records, as before).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from itertools import repeat
from operator import methodcaller
from typing import Any, Protocol

import sqlalchemy as sa

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, Key, KeyRange, RangeDigest


class SqliteTables(Protocol):
    """What these functions use of SqliteAdapter (sqlite/adapter.py passes itself; this module does not import it)."""

    name: str

    @property
    def engine(self) -> sa.Engine: ...
    def table(self, name: str) -> sa.Table: ...
    def schema(self, name: str) -> CollectionSchema: ...
    def key_of(self, name: str) -> tuple[str, ...]: ...
    def declared_types(self, name: str) -> dict[str, str]: ...
    def transaction(self) -> AbstractContextManager[Any]: ...
    def _conn(self) -> AbstractContextManager[sa.Connection]: ...
    def _reading(self) -> AbstractContextManager[sa.Connection]: ...
    def _errors(self) -> AbstractContextManager[None]: ...
    def _to_db(self, col: Column, value: Any) -> Any: ...
    def _sa_type(self, col: Column) -> sa.types.TypeEngine[Any]: ...
    def _range_where(self, name: str, after: Key | None, until: Key | None) -> list[sa.ColumnElement[bool]]: ...
    def _range_where_on(self, table: sa.Table, name: str, after: Key | None,
                        until: Key | None) -> list[sa.ColumnElement[bool]]: ...

_ALIAS = "shiftover_src"
METHOD = "stored values"
_BATCH = 5000  # rows fetched at a time
_ROW_HASH = functools.partial(hashlib.blake2b, digest_size=8)
_DIGEST = methodcaller("digest")


def database_file(adapter: SqliteTables) -> str | None:
    """The adapter's database file, or None for an in-memory database (which another connection cannot attach)."""
    path = adapter.engine.url.database
    return None if not path or path == ":memory:" or path.startswith("file::memory:") else path


def copy_range(dst: SqliteTables, src: SqliteTables, name: str, rng: KeyRange) -> int:
    """Replace `rng` of `name` on `dst` with the source's rows, in one transaction of the target."""
    path = database_file(src)
    table = dst.table(name)
    attached = src.table(name).to_metadata(sa.MetaData(), schema=_ALIAS)
    cols = [c for c in attached.c.keys() if c in table.c]
    with dst._errors(), dst.engine.connect() as conn:
        dbapi: Any = conn.connection.driver_connection
        dbapi.execute("ATTACH DATABASE ? AS " + _ALIAS, (path,))  # a fixed alias; the path is a parameter
        try:
            with conn.begin():
                conn.execute(sa.delete(table).where(*dst._range_where(name, rng.lo, rng.hi)))
                where = src._range_where_on(attached, name, rng.lo, rng.hi)
                done = conn.execute(sa.insert(table).from_select(cols, sa.select(*[attached.c[c] for c in cols])
                                                                 .where(*where)))
                copied = int(done.rowcount)
        finally:
            try:
                dbapi.execute("DETACH DATABASE " + _ALIAS)
            except Exception:  # noqa: BLE001 - a connection that cannot detach is not handed back to the pool
                conn.invalidate()
                raise
    return copied


def methods(adapter: SqliteTables, name: str, columns: Sequence[str]) -> tuple[str, ...]:
    """The one in-engine method, named with a fingerprint of the columns' declared types."""
    declared = adapter.declared_types(name)
    if any(c not in declared for c in columns):
        return ()
    mark = hashlib.blake2b(json.dumps([(c, declared[c]) for c in columns]).encode(), digest_size=4).hexdigest()
    return (f"{METHOD} {mark}",)


def digests(adapter: SqliteTables, name: str, ranges: Sequence[KeyRange], columns: Sequence[str],
            method: str) -> list[RangeDigest]:
    if method not in methods(adapter, name, columns):
        raise ValueError(f"unknown digest method {method!r}")
    table = adapter.table(name)
    out = []
    with adapter._reading() as conn:
        for rng in ranges:
            stmt = sa.select(*[table.c[c] for c in columns]).where(*adapter._range_where(name, rng.lo, rng.hi))
            result = conn.execute(stmt)
            try:
                cursor, n, total = result.cursor, 0, 0  # the driver's cursor: rows as sqlite3 makes them (tuples)
                while batch := cursor.fetchmany(_BATCH):
                    n += len(batch)
                    total += rows_hash(batch)
            finally:
                result.close()
            out.append(RangeDigest(rng, n, canonical.combine(total)))
    return out


def rows_hash(rows: Sequence[tuple[Any, ...]]) -> int:
    """The sum of the rows' hashes: BLAKE2b (8 bytes, little-endian) of the UTF-8 of each row tuple's `repr`."""
    texts = map(str.encode, map(repr, rows), repeat("utf-8"), repeat("surrogatepass"))
    digests = map(_DIGEST, map(_ROW_HASH, texts))
    return sum(map(int.from_bytes, digests, repeat("little")))  # type: ignore[arg-type]  # map() of a classmethod
