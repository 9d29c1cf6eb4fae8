"""Firestore's side of the application queries (adapters/query.py), mixed into FirestoreDocuments.

In the engine: `==`, `in` (up to 30 values), `!= null` (is not null) and `!=`, and `<`, `<=`, `>`, `>=` on fields
whose Firestore order is the canonical one (text, integer, float, boolean, timestamp); the document id for `id`
filters; order, offset and limit when every filter ran in the engine and none is an inequality (Firestore orders an
inequality's field first); counts with the COUNT aggregation.

After reading (on the documents the engine's filters chose): `like` and `ilike` (Firestore has no pattern match),
`is null` (Firestore's `== null` skips documents that lack the field, which the other providers count as NULL), ranges
on decimals, dates, maps and bytes (stored as maps or bytes, whose order is not the canonical one), filters on a
subcollection's parent ids (they live in the path), `in` with more than 30 values; then the order and the window.
Every record that comes back is checked against every filter, so an engine that is looser than SQL's NULL rule
cannot let a record through.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shiftover.adapters.base import CollectionSchema, Filter, Key, Record
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.query import Order, check_window, matches, ordered, window

_OPS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "in"}
_ENGINE_ORDERED = ("text", "integer", "float", "boolean", "timestamp")
_IN_MAX = 30


class DocumentQueries:
    """find and count_matching over documents, and update/delete by query outside a transaction's 500-write cap."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        _pending: list[Any] | None
        def schema(self, name: str) -> CollectionSchema: ...
        def _pattern(self, name: str) -> list[str]: ...
        def _base(self, name: str) -> Any: ...
        def _ref(self, name: str, key: Key) -> Any: ...
        def _enc(self, value: Any) -> Any: ...
        def _row(self, schema: CollectionSchema, key: Key, fields: dict[str, Any]) -> Record: ...
        def _keyed(self, name: str, query: Any) -> Iterator[tuple[Key, dict[str, Any]]]: ...
        def _errors(self) -> Any: ...
        def count(self, name: str) -> int: ...
        def served_natively(self, name: str) -> bool: ...

    def _engine_filter(self, schema: CollectionSchema, root: bool, f: Filter) -> tuple[Any, str, Any] | None:
        """(field path, operator, value) for Firestore, or None when `f` runs after reading."""
        from google.cloud.firestore_v1.field_path import FieldPath

        if f.field not in schema.names:
            raise InvalidRequest(f"{schema.name!r} has no field {f.field!r}", provider=self.name)
        null = f.null_test
        if (f.field in schema.key and not (root and f.field == "id")) or null is True:
            return None
        if null is False:
            return f.field, "!=", None
        if f.op in ("like", "ilike") or (f.op == "in" and len(f.value) > _IN_MAX):
            return None
        if f.op in ("lt", "lte", "gt", "gte") and schema.column(f.field).type not in _ENGINE_ORDERED:
            return None
        values = [v for v in f.value if v is not None] if f.op == "in" else [f.value]
        if f.field == "id":
            refs = [self._ref(schema.name, (v,)) for v in values]
            return FieldPath.document_id(), _OPS[f.op], refs if f.op == "in" else refs[0]
        encoded = [self._enc(v) for v in values]
        return f.field, _OPS[f.op], encoded if f.op == "in" else encoded[0]

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        from google.cloud.firestore import FieldFilter, Query
        from google.cloud.firestore_v1.field_path import FieldPath

        check_window(offset, limit)
        schema = self.schema(name)
        root = len(self._pattern(name)) == 1
        query, local, inequality = self._base(name), False, False
        for f in where:
            pushed = self._engine_filter(schema, root, f)
            if pushed is None:
                local = True
                continue
            inequality = inequality or pushed[1] not in ("==", "in")
            query = query.where(filter=FieldFilter(*pushed))
        for field, _ in order_by:
            if field not in schema.names or (field in schema.key and not (root and field == "id")):
                raise InvalidRequest(f"ordering {name!r} by {field!r} is not supported", provider=self.name)
        in_engine = not local and not inequality and all(
            schema.column(f).type in _ENGINE_ORDERED for f, _ in order_by)
        if in_engine:
            for field, direction in order_by:
                path = FieldPath.document_id() if field == "id" else field
                query = query.order_by(path, direction=Query.DESCENDING if direction == "desc" else Query.ASCENDING)
            if offset:
                query = query.offset(offset)
            if limit is not None:
                query = query.limit(limit)
        rows = [self._row(schema, k, fields) for k, fields in self._keyed(name, query)]
        rows = [r for r in rows if matches(r, where)]
        return rows if in_engine else window(ordered(rows, order_by), offset, limit)

    def count_matching(self, name: str, where: Sequence[Filter]) -> int:
        from google.cloud.firestore import FieldFilter

        if not where:
            return self.count(name)
        if not self.served_natively(name):
            return len(self.find(name, where))
        schema = self.schema(name)
        root = len(self._pattern(name)) == 1
        pushed = [self._engine_filter(schema, root, f) for f in where]
        if not root or any(p is None or p[1] == "!=" for p in pushed):  # groups span other parents; != is rechecked
            return len(self.find(name, where))
        query = self._base(name)
        for p in pushed:
            query = query.where(filter=FieldFilter(*p))  # type: ignore[misc]
        with self._errors():
            return int(query.count(alias="n").get()[0][0].value)

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """update_where / delete_where: atomic inside a transaction (at most 500 writes), else committed in batches."""
        yield
