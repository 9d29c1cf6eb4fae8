"""MongoDB's side of the application queries (adapters/query.py), mixed into MongoAdapter: filters as query operators
(`$eq`, `$nin: [v, null]` for ne, `$in`, `$lt`..., `$regex` for like/ilike, `null` / `$ne: null`), order as `sort`,
offset as `skip`, counts as `count_documents`, update-many as `update_many($set)` and delete-many as `delete_many`.

Range filters and ordering on fields whose values are not plain BSON scalars here (timestamps with sub-millisecond
digits are sub-documents, decimals are Decimal128, dates are `{"@date": ..}`) run after reading: the other conditions
still run in the engine, then the rest, the order and the window are applied to what came back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from shiftover.adapters.base import CollectionSchema, Column, Filter, Record
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.query import Order, check_window, like_regex, matches, ordered, window

_ENGINE_ORDERED = ("text", "integer", "float", "boolean")  # column types whose BSON order is the canonical order


class MongoQueries:
    """find, count_matching, update_where and delete_where for MongoAdapter (which provides the rest)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        _errors: Callable[[], AbstractContextManager[None]]
        @property
        def db(self) -> Any: ...
        @property
        def _s(self) -> dict[str, Any]: ...
        def schema(self, name: str) -> CollectionSchema: ...
        def _enc(self, value: Any, col: Column | None = None) -> Any: ...
        def _field_path(self, schema: CollectionSchema, field: str) -> str: ...
        def _record(self, schema: CollectionSchema, doc: dict[str, Any]) -> Record: ...
        def _each(self, cursor: Any) -> Iterator[dict[str, Any]]: ...
        def _refuse_key_changes(self, name: str, changes: Record) -> tuple[str, ...]: ...
        def _fields(self, schema: CollectionSchema, rec: Record, stamp: dt.datetime) -> dict[str, Any]: ...
        def _stamp(self) -> dt.datetime: ...

    def _column(self, schema: CollectionSchema, field: str) -> Column | None:
        if field not in schema.names:
            raise InvalidRequest(f"{schema.name!r} has no field {field!r}", provider=self.name)
        return schema.column(field)

    def _split(self, schema: CollectionSchema, where: Sequence[Filter]) -> tuple[dict[str, Any], list[Filter]]:
        """The filters the engine runs, as one query document, and those applied after reading."""
        conds: list[dict[str, Any]] = []
        local: list[Filter] = []
        for f in where:
            col = self._column(schema, f.field)
            path = self._field_path(schema, f.field)
            null = f.null_test
            if null is not None:
                conds.append({path: None} if null else {path: {"$ne": None}})
            elif f.op in ("like", "ilike"):
                conds.append({path: {"$regex": like_regex(f.value, fold=f.op == "ilike"), "$options": "s"}})
            elif f.op == "in":
                conds.append({path: {"$in": [self._enc(v, col) for v in f.value if v is not None]}})
            elif f.op == "eq":
                conds.append({path: {"$eq": self._enc(f.value, col)}})
            elif f.op == "ne":
                conds.append({path: {"$nin": [self._enc(f.value, col), None]}})
            elif col is not None and col.type in _ENGINE_ORDERED:
                conds.append({path: {f"${f.op}": self._enc(f.value, col)}})
            else:
                local.append(f)
        return ({"$and": conds} if conds else {}), local

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        check_window(offset, limit)
        schema = self.schema(name)
        query, local = self._split(schema, where)
        in_engine = not local and all(self._column(schema, f).type in _ENGINE_ORDERED  # type: ignore[union-attr]
                                      for f, _ in order_by)
        with self._errors():
            cur = self.db[name].find(query, **self._s)
            if order_by and in_engine:
                cur = cur.sort([(self._field_path(schema, f), -1 if d == "desc" else 1) for f, d in order_by])
            if in_engine and offset:
                cur = cur.skip(offset)
            if in_engine and limit is not None:
                cur = cur.limit(limit)
            docs = list(self._each(cur))
        rows = [self._record(schema, d) for d in docs]
        if in_engine:
            return rows
        return window(ordered([r for r in rows if matches(r, local)], order_by), offset, limit)

    def count_matching(self, name: str, where: Sequence[Filter]) -> int:
        schema = self.schema(name)
        query, local = self._split(schema, where)
        if local:
            return len(self.find(name, where))
        with self._errors():
            return int(self.db[name].count_documents(query, **self._s))

    def _matching_query(self, name: str, where: Sequence[Filter]) -> dict[str, Any]:
        schema = self.schema(name)
        query, local = self._split(schema, where)
        if not local:
            return query
        ids = [self._enc(r[schema.key[0]], schema.column(schema.key[0])) if len(schema.key) == 1 else
               {k: self._enc(r[k], schema.column(k)) for k in schema.key} for r in self.find(name, where)]
        return {"_id": {"$in": ids}}

    def update_where(self, name: str, where: Sequence[Filter], changes: Record) -> int:
        self._refuse_key_changes(name, changes)
        schema = self.schema(name)
        for field in changes:
            self._column(schema, field)
        query = self._matching_query(name, where)
        with self._errors():
            result = self.db[name].update_many(query, {"$set": self._fields(schema, changes, self._stamp())},
                                               **self._s)
        return int(result.matched_count)

    def delete_where(self, name: str, where: Sequence[Filter]) -> int:
        query = self._matching_query(name, where)
        with self._errors():
            return int(self.db[name].delete_many(query, **self._s).deleted_count)
