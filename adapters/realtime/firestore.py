"""Firestore realtime: an `on_snapshot` listener on the collection (a collection group for a subcollection pattern).

The listener's first snapshot is the collection as it is, not a change, and is skipped. ADDED, MODIFIED and REMOVED
document changes become insert, update and delete; the record is the document as the snapshot holds it (decoded as the
adapter reads it). The server feeds the listener: there is no polling.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from shiftover.adapters import canonical
from shiftover.adapters.firestore.adapter import FirestoreDocuments
from shiftover.adapters.realtime.change import Change

_OPS = {"ADDED": "insert", "MODIFIED": "update", "REMOVED": "delete"}


class SnapshotSource:
    def __init__(self, adapter: Any, collection: str) -> None:
        self._adapter: FirestoreDocuments = adapter
        self._collection = collection
        self._schema = adapter.schema(collection)
        self._queue: queue.Queue[Change] = queue.Queue()
        self._started = threading.Event()
        with adapter._errors():
            self._watch = adapter._base(collection).on_snapshot(self._on_snapshot)
        if not self._started.wait(10):
            self.close()
            from shiftover.adapters.errors import ConnectionTimeout

            raise ConnectionTimeout(f"Firestore did not start listening to {collection!r} within 10 s",
                                    hint="retry", provider=adapter.name)

    def _on_snapshot(self, _docs: Any, changes: Any, read_time: Any) -> None:
        """On the listener's thread: queue the changes (the first call is the initial state, not changes)."""
        if not self._started.is_set():
            self._started.set()
            return
        at = canonical.utc(read_time)
        for change in changes:
            key = self._adapter._key_of_path(self._collection, change.document.reference.path)
            if key is None:
                continue
            op = _OPS[change.type.name]
            record = None if op == "delete" else self._adapter._record(self._schema, key,
                                                                        change.document.to_dict() or {})
            self._queue.put(Change(self._collection, op, key, record, at, self._adapter.name))  # type: ignore[arg-type]

    def poll(self, timeout: float) -> list[Change]:
        try:
            out = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def close(self) -> None:
        try:
            self._watch.unsubscribe()
        finally:
            self._adapter.close()
