"""`backend.realtime`: a collection's inserts, updates and deletes as they happen, on the provider serving it.

    with backend.realtime.subscribe("orders") as changes:        # an iterator of Change; close() ends it
        for change in changes:
            print(change.op, change.key, change.record)          # "insert" | "update" | "delete"
    sub = backend.realtime.on("orders", handle)                  # handle(change) on a thread of its own
    sub.close()
    backend.realtime.uninstall("orders")                         # PostgreSQL/SQLite: remove what subscribe installed

How each provider sees changes (a change by any client, not only through Shiftover):
- PostgreSQL and Supabase's database: a row trigger `shiftover_realtime_<table>` (function
  `shiftover_realtime_notify()`) sends `pg_notify('shiftover_realtime', {schema, table, op, key, at})` when the writing
  transaction commits; the subscription LISTENs on a connection of its own and reads the row by key. Payloads carry
  keys only (NOTIFY's limit is 8000 bytes); a change whose key alone is longer is dropped and logged.
- SQLite: AFTER triggers `_shiftover_realtime_<table>_<op>` write (table, key, op, time) to `_shiftover_realtime`,
  polled every 0.1 s; entries older than 60 s are deleted by the subscribers. (The migrations' capture log is not
  reused: it cannot tell an insert from an update, and its entries belong to the run that acknowledges them.)
- memory: the store's realtime feed (the last 10,000 writes), polled every 0.1 s.
- Firestore: an `on_snapshot` listener on the collection (or collection group), fed by the server.
- MongoDB: a change stream, which only a replica set or sharded cluster offers (BACKEND_014 elsewhere).

`record` is the row as read when the change is delivered, so after several quick updates each event may carry the
latest row; it is None for a delete, and for an insert or update whose row was deleted before it was read. `at` is when
the provider recorded the change (PostgreSQL and SQLite: the trigger's clock; memory: the write; Firestore: the
snapshot's read time; MongoDB: the cluster time).

A subscription is bound to the provider serving the collection when it starts (`Subscription.provider`); it does not
follow a failover or cutover. When the pointer (or the collection's route) moves elsewhere, the subscription ends
with a last Change of op "switched" (key (), record None) naming the new provider in `provider`: subscribe again
there. A Subscription is used from one thread (the callback API's own thread for `on`); close() may come from any.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shiftover.adapters.base import Adapter
from shiftover.adapters.errors import BackendError, InvalidRequest
from shiftover.adapters.realtime.change import OPS, Change, Source

__all__ = ["OPS", "Change", "Realtime", "Subscription"]

if TYPE_CHECKING:
    from shiftover.adapters.config import Config
    from shiftover.adapters.database import RoutedView
    from shiftover.control.store import ControlStore

_LOG = logging.getLogger("shiftover.realtime")
_FOLLOW_S = 1.0  # how often a subscription checks that its provider still serves the collection


class Backend(Protocol):
    """What `backend.realtime` uses of the Backend that owns it (adapters/router.py; not imported: it imports this)."""

    config: Config

    def view(self, *, fresh: bool = False) -> RoutedView: ...


class Subscription:
    """An iterator of Change events of one collection on one provider; a context manager; close() ends it."""

    def __init__(self, collection: str, provider: str, source: Source, events: Sequence[str],
                 serving: _Follower) -> None:
        self.collection = collection
        self.provider = provider
        self.events = tuple(events)
        self._source = source
        self._serving = serving
        self._pending: list[Change] = []
        self._closed = threading.Event()
        self._released = False
        self._lock = threading.Lock()
        self._iterating = False
        self._checked = time.monotonic()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended a callback subscription's thread, if anything

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        with self._lock:
            self._iterating = True
        try:
            return self._next()
        finally:
            with self._lock:
                self._iterating = False
            if self._closed.is_set():
                self._release()

    def _next(self) -> Change:
        while not self._pending:
            if self._closed.is_set():
                raise StopIteration
            if time.monotonic() - self._checked >= _FOLLOW_S:
                self._checked = time.monotonic()
                now = self._serving()
                if now != self.provider:
                    self._closed.set()
                    return Change(self.collection, "switched", (), None, dt.datetime.now(dt.timezone.utc), now)
            try:
                polled = self._source.poll(0.25)
            except BackendError:
                if self._closed.is_set():  # closed meanwhile: what broke was being shut down
                    raise StopIteration from None
                raise
            self._pending = [c for c in polled if c.op in self.events]
        return self._pending.pop(0)

    def close(self) -> None:
        """End the subscription: an iterating thread stops within 0.25 s; a callback thread is joined."""
        self._closed.set()
        with self._lock:
            idle = not self._iterating
        if idle:
            self._release()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        try:
            self._source.close()
        finally:
            self._serving.close()

    def _run(self, callback: Callable[[Change], Any]) -> None:
        try:
            for change in self:
                callback(change)
        except BaseException as exc:  # noqa: BLE001 - kept for the app to read; the thread must not die silently
            self.error = exc
            _LOG.error("realtime callback for %r stopped: %s", self.collection, exc)
            self._closed.set()
            self._release()

    def start(self, callback: Callable[[Change], Any]) -> Subscription:
        self._thread = threading.Thread(target=self._run, args=(callback,), daemon=True,
                                        name=f"shiftover-realtime-{self.collection}")
        self._thread.start()
        return self

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Realtime:
    """`backend.realtime`."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def subscribe(self, collection: str, *, events: Sequence[str] = OPS) -> Subscription:
        """Changes to `collection` from now on, as an iterator (see the module docstring for each provider)."""
        if bad := [e for e in events if e not in OPS]:
            raise InvalidRequest(f"unknown realtime event {bad[0]!r}", hint="events are insert, update, delete")
        backend = self._backend
        provider = backend.view(fresh=True).provider_for(collection)
        adapter = _open(backend, provider)
        try:
            source = _source(adapter, collection)
        except BaseException:
            adapter.close()
            raise
        return Subscription(collection, provider, source, events, _Follower(backend, collection))

    def on(self, collection: str, callback: Callable[[Change], Any], *, events: Sequence[str] = OPS) -> Subscription:
        """Run `callback(change)` for each change on a thread of the subscription's own; close() stops it."""
        return self.subscribe(collection, events=events).start(callback)

    def uninstall(self, collection: str, provider: str | None = None) -> None:
        """Remove what subscribe installed for `collection` (PostgreSQL, SQLite: its trigger(s); the shared function
        or log table goes with the last one). Open subscriptions of it stop receiving changes. Idempotent."""
        name = provider or self._backend.view(fresh=True).provider_for(collection)
        with _open(self._backend, name) as adapter:
            if adapter.kind in ("postgresql", "supabase"):
                from shiftover.adapters.realtime.postgres import uninstall

                uninstall(adapter, collection)  # type: ignore[arg-type]
            elif adapter.kind == "sqlite":
                from shiftover.adapters.realtime.logs import uninstall_sqlite

                uninstall_sqlite(adapter, collection)  # type: ignore[arg-type]


def _open(backend: Backend, provider: str) -> Adapter:
    """An adapter of the subscription's own (adapters are not shared between threads)."""
    from shiftover.adapters.registry import open_adapter

    return open_adapter(backend.config, provider)


class _Follower:
    """Who serves the collection now, read through a control store of the subscription's own."""

    def __init__(self, backend: Backend, collection: str) -> None:
        self._url = backend.config.control.url.get_secret_value()
        self._primary = backend.config.primary()
        self._collection = collection
        self._store: ControlStore | None = None

    def __call__(self) -> str:
        from shiftover.control.store import ControlStore

        if self._store is None:
            self._store = ControlStore(self._url)
        pointer = self._store.pointer()
        return self._store.routes().get(self._collection, pointer.provider if pointer else self._primary)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _source(adapter: Adapter, collection: str) -> Source:
    """The mechanism for this adapter's kind; it owns the adapter from here on."""
    adapter.schema(collection)  # CollectionNotFound now, not on the first poll
    if adapter.kind in ("postgresql", "supabase"):
        from shiftover.adapters.realtime.postgres import NotifySource

        return NotifySource(adapter, collection)  # type: ignore[arg-type]
    if adapter.kind == "sqlite":
        from shiftover.adapters.realtime.logs import SqliteLogSource

        return SqliteLogSource(adapter, collection)  # type: ignore[arg-type]
    if adapter.kind == "memory":
        from shiftover.adapters.realtime.logs import MemoryFeedSource

        return MemoryFeedSource(adapter, collection)  # type: ignore[arg-type]
    if adapter.kind == "firestore":
        from shiftover.adapters.realtime.firestore import SnapshotSource

        return SnapshotSource(adapter, collection)
    if adapter.kind == "mongodb":
        from shiftover.adapters.realtime.mongo import ChangeStreamSource

        return ChangeStreamSource(adapter, collection)
    raise InvalidRequest(f"{adapter.kind} has no realtime changes", provider=adapter.name,
                         hint="subscribe on PostgreSQL, Supabase, SQLite, memory, Firestore or a MongoDB replica set")
