"""MongoDB realtime: a change stream (`watch`), which only a replica set or a sharded cluster offers.

Inserts, updates and replaces, and deletes become insert, update and delete; the record is the document after the
change (`full_document="updateLookup"`) in the adapter's canonical form. On a standalone server or the in-process
double (mongomock) there is no change stream: subscribe fails with BACKEND_014.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shiftover.adapters import canonical
from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.realtime.change import Change

_OPS = {"insert": "insert", "update": "update", "replace": "update", "delete": "delete"}
_NO_STREAM = ("a MongoDB change stream needs a replica set or a sharded cluster", "run MongoDB as a replica set "
              "(a single-node one is enough: mongod --replSet rs0, then rs.initiate()), or poll with find()")


class ChangeStreamSource:
    def __init__(self, adapter: Any, collection: str) -> None:
        self._adapter, self._collection = adapter, collection
        self._schema = adapter.schema(collection)
        if adapter._double is not None:
            adapter.close()
            raise InvalidRequest(f"{adapter.name!r} is an in-process MongoDB double: {_NO_STREAM[0]}",
                                 hint=_NO_STREAM[1], provider=adapter.name)
        import pymongo.errors

        try:
            with adapter._errors():
                self._stream = adapter.db[collection].watch(full_document="updateLookup", max_await_time_ms=250)
        except pymongo.errors.OperationFailure:
            adapter.close()
            raise InvalidRequest(f"{adapter.name!r}: {_NO_STREAM[0]}", hint=_NO_STREAM[1],
                                 provider=adapter.name) from None
        except InvalidRequest as exc:
            adapter.close()
            raise InvalidRequest(f"{adapter.name!r}: {_NO_STREAM[0]} ({exc.message})", hint=_NO_STREAM[1],
                                 provider=adapter.name) from None

    def poll(self, timeout: float) -> list[Change]:
        with self._adapter._errors():
            event = self._stream.try_next()
        if event is None or event.get("operationType") not in _OPS:
            return []
        op = _OPS[event["operationType"]]
        raw_id = event["documentKey"]["_id"]
        ids = [raw_id] if len(self._schema.key) == 1 else [raw_id.get(k) for k in self._schema.key]
        key = tuple(self._adapter._dec(v) for v in ids)
        doc = event.get("fullDocument")
        record = None if op == "delete" or doc is None else self._adapter._record(self._schema, doc)
        at = event.get("clusterTime")
        when = canonical.utc(at.as_datetime()) if at is not None else dt.datetime.now(dt.timezone.utc)
        return [Change(self._collection, op, key, record, when, self._adapter.name)]  # type: ignore[arg-type]

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._adapter.close()
