"""The MongoDB test double: mongomock, served to the adapter as `mongomock://NAME/db` (adapters/mongo/clients.py).

Adapters opened on the same NAME in one process share the data (one mongomock ServerStore per NAME); mongomock offers
no transactions. It has no index and copies results on every read, so two hot loops take a faster road here, through
mongomock's private attributes (kept in this file, pinned by tests/test_mongo_bulk.py):
- a cursor's results are computed once and iterated as a list (its Cursor re-slices the whole list on every next());
- a key range's ids are picked from the store's keys under its read lock instead of filtering the whole collection.
Imported by tests/fixtures_docstores.py (and so by every test and by bench/migrate_mixed.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from shiftover.adapters.mongo.clients import InProcessClient, register

_STORES: dict[str, Any] = {}
_LOCK = threading.Lock()


def connect(url: str) -> tuple[Any, str | None]:
    import mongomock
    from mongomock.store import ServerStore

    host, _, db = url.removeprefix("mongomock://").partition("/")
    with _LOCK:
        store = _STORES.setdefault(host or "default", ServerStore())
    return mongomock.MongoClient(tz_aware=True, _store=store), db.split("?")[0] or None


def drop_store(name: str) -> None:
    with _LOCK:
        _STORES.pop(name, None)


def each(cursor: Any) -> Iterator[dict[str, Any]]:
    compute = getattr(cursor, "_compute_results", None)
    if compute is None:
        return iter(cursor)
    try:
        return iter(list(compute(with_limit_and_skip=True)))
    except TypeError:  # another mongomock version: the plain cursor
        return iter(cursor)


def ids_in_range(coll: Any, lo: Any, hi: Any) -> list[Any] | None:
    from bson import ObjectId

    store = getattr(coll, "_store", None)
    ids = getattr(store, "_documents", None)
    lock = getattr(store, "_rwlock", None)
    if not isinstance(ids, dict) or lock is None:
        return None
    with lock.reader():
        present = list(ids)
    kinds = {type(i) for i in present} | {type(b) for b in (lo, hi) if b is not None}
    if len(kinds) > 1 or not kinds <= {int, str, ObjectId}:  # several types, or one BSON and Python may order apart
        return None
    return [i for i in present if (lo is None or i > lo) and (hi is None or i <= hi)]


register("mongomock", InProcessClient(connect=connect, each=each, ids_in_range=ids_in_range))
