"""MongoDB's bulk data paths by key range, mixed into MongoAdapter: a range read as one sorted query, key
boundaries from `_id` alone, digests of every range from one unsorted pass, and a range replaced by one delete and
one bulk insert (on mongomock, the range's ids picked from its store, which has no index)."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, Key, KeyRange, RangeDigest, Record
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.mongo.clients import InProcessClient


class KeyRanges:
    """scan_range, key_boundaries, digests and replace_range for MongoAdapter (which provides the rest)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        options: Any
        _session: Any
        _errors: Callable[[], AbstractContextManager[None]]
        @property
        def db(self) -> Any: ...
        @property
        def _double(self) -> InProcessClient | None: ...
        @property
        def _s(self) -> dict[str, Any]: ...
        def schema(self, name: str) -> CollectionSchema: ...
        def _enc(self, value: Any, col: Column | None = None) -> Any: ...
        def _dec(self, value: Any) -> Any: ...
        def _paths(self, schema: CollectionSchema) -> list[str]: ...
        def _id(self, schema: CollectionSchema, key: Key) -> Any: ...
        def _record(self, schema: CollectionSchema, doc: dict[str, Any]) -> Record: ...
        def _keyset(self, schema: CollectionSchema, after: Key | None, until: Key | None) -> dict[str, Any]: ...
        def _each(self, cursor: Any) -> Iterator[dict[str, Any]]: ...
        def _fields(self, schema: CollectionSchema, rec: Record, stamp: dt.datetime) -> dict[str, Any]: ...

    def scan_range(self, name: str, rng: KeyRange, *, batch: int) -> Iterator[list[Record]]:
        """One sorted query over the whole range, read in lists of `batch`: a query per page would filter and sort
        the collection again for every page (on mongomock that is quadratic in the collection)."""
        schema = self.schema(name)
        with self._errors():
            cur = self.db[name].find(self._keyset(schema, rng.lo, rng.hi), **self._s)
            cur = cur.sort([(p, 1) for p in self._paths(schema)]).batch_size(max(batch, 1))
            rows: list[Record] = []
            for doc in self._each(cur):
                rows.append(self._record(schema, doc))
                if len(rows) >= batch:
                    yield rows
                    rows = []
        if rows:
            yield rows

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        """Every `every`-th key in key order, reading only `_id` (a projection), not whole documents."""
        schema = self.schema(name)
        out: list[Key] = []
        with self._errors():
            cur = self.db[name].find({}, {"_id": 1}, **self._s).sort([(p, 1) for p in self._paths(schema)])
            for i, doc in enumerate(self._each(cur), 1):
                if i % every == 0:
                    raw_id = doc["_id"]
                    ids = [raw_id] if len(schema.key) == 1 else [raw_id.get(k) for k in schema.key]
                    out.append(tuple(self._dec(v) for v in ids))
        return out

    def digests(self, name: str, ranges: Sequence[KeyRange], *, batch: int = 5000) -> list[RangeDigest]:
        """(count, digest) per key range from ONE unsorted pass over the collection, each record counted in the range
        its key falls in (by bisection on the ranges' bounds): a query per range filters the whole collection again
        on mongomock, and a sum of hashes needs no order. Ranges that do not tile the key space in order, or keys
        that Python cannot order, take the generic range-by-range way."""
        ordered = list(ranges)
        tiled = bool(ordered) and ordered[0].lo is None and ordered[-1].hi is None and all(
            a.hi is not None and a.hi == b.lo for a, b in zip(ordered, ordered[1:], strict=False))
        if not tiled:
            return super().digests(name, ranges, batch=batch)  # type: ignore[misc]
        schema = self.schema(name)
        bounds: list[Any] = [r.hi for r in ordered[:-1]]  # tiled: none of them is None
        counts, sums = [0] * len(ordered), [0] * len(ordered)
        try:
            with self._errors():
                for doc in self._each(self.db[name].find({}, **self._s).batch_size(max(batch, 1))):
                    rec = self._record(schema, doc)
                    i = bisect.bisect_left(bounds, tuple(rec[k] for k in schema.key))
                    counts[i] += 1
                    sums[i] += canonical.record_hash(rec)
        except TypeError:  # keys of mixed types: no order in Python, so no bucketing
            return super().digests(name, ranges, batch=batch)  # type: ignore[misc]
        return [RangeDigest(r, c, canonical.combine(s)) for r, c, s in zip(ordered, counts, sums, strict=True)]

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        """One range delete, then one unordered bulk insert: an upsert per record costs a lookup each (linear in the
        collection on mongomock). Not atomic without a transaction: a copy interrupted between the two re-copies the
        range. Records must lie inside `rng`."""
        from pymongo import InsertOne

        schema = self.schema(name)
        now = dt.datetime.now(dt.timezone.utc)
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000) + dt.timedelta(milliseconds=1)
        docs = []
        for rec in records:
            key = tuple(rec.get(k) for k in schema.key)
            if any(v is None for v in key) or not rng.contains(key):
                raise InvalidRequest(f"record with key {key} is not in the range {rng.label()} of {name!r}",
                                     provider=self.name)
            docs.append(InsertOne({"_id": self._id(schema, key), **self._fields(schema, rec, stamp)}))
        with self._errors():
            self._delete_range(name, schema, rng)
            for start in range(0, len(docs), self.options.batch_size):
                self.db[name].bulk_write(docs[start:start + self.options.batch_size], ordered=False, **self._s)
        return len(docs)

    def _delete_range(self, name: str, schema: CollectionSchema, rng: KeyRange) -> None:
        """Delete every document with a key in `rng`. A server answers the range filter from the `_id` index; an
        in-process stand-in without an index (mongomock filters and copies the whole collection, which made a copy
        quadratic) may pick the range's ids itself (clients.InProcessClient.ids_in_range), and only those go."""
        coll = self.db[name]
        double = self._double if self._session is None else None
        if double is not None and double.ids_in_range is not None and len(schema.key) == 1:
            col = schema.column(schema.key[0])
            lo = None if rng.lo is None else self._enc(rng.lo[0], col)
            hi = None if rng.hi is None else self._enc(rng.hi[0], col)
            doomed = double.ids_in_range(coll, lo, hi)
            if doomed is not None:
                if doomed:
                    coll.delete_many({"_id": {"$in": doomed}})
                return
        coll.delete_many(self._keyset(schema, rng.lo, rng.hi), **self._s)
