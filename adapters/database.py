"""`backend.db`: records through the router, on whichever provider is active.

    backend = Backend.from_config("backends.yaml")
    paid = backend.db.find("orders", [("status", "eq", "paid"), ("total", "gte", 100)],
                           order_by=[("created_at", "desc")], limit=20, offset=40)
    backend.db.update_many("orders", [("status", "eq", "pending")], {"status": "expired"})   # -> records changed
    with backend.db.transaction() as tx:                                      # where the provider has them
        tx.upsert("accounts", [...]); tx.delete_many("holds", [("account", "eq", 7)])
    backend.db.sql("select count(*) as n from orders where total > :t", {"t": 100})        # SQL providers only

Filters are `Filter` objects or `(field, op, value)` tuples; what they mean is adapters/query.py. Every write —
update_many, delete_many and raw SQL included — goes through the router's write path: it follows the pointer, waits
out write freezes for up to `migration.freeze_wait_s`, is refused with StaleEpoch when the Backend is pinned to an
epoch the pointer has left, and is repeated on mirrors in mirror mode.

A transaction runs on one provider, `services.db` or else the one serving the pointer when it begins, and is pinned
to that epoch: if the pointer moves before it commits, it is rolled back and StaleEpoch (BACKEND_011) says to retry
it. A write inside it to a frozen collection fails at once with WriteFrozen (a transaction does not hold its locks
while it waits). In mirror mode its writes are replayed on each mirror in one transaction there after the commit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from shiftover.adapters.base import Adapter, Key, Record, SqlResult
from shiftover.adapters.errors import BackendError, InvalidRequest, ProviderUnavailable, StaleEpoch, WriteFrozen
from shiftover.adapters.query import Filter, Order, as_filters
from shiftover.control.store import Pointer

T = TypeVar("T")
Where = Sequence[Filter | tuple[str, str, Any]]


def _key(key: Key | Any) -> Key:
    return tuple(key) if isinstance(key, (tuple, list)) else (key,)


def _records(records: Record | Sequence[Record]) -> Sequence[Record]:
    return [records] if isinstance(records, dict) else records


def _some(where: Where, what: str) -> list[Filter]:
    filters = as_filters(where)
    if not filters:
        raise InvalidRequest(f"{what} without filters would touch every record",
                             hint="give at least one filter; for every record say so, e.g. ('id', 'is_not', None)")
    return filters


class RoutedView(Protocol):
    """What is read of the router's view of the control store (adapters/router.View)."""

    @property
    def pointer(self) -> Pointer: ...
    def provider_for(self, collection: str) -> str: ...
    def frozen(self, provider: str, collection: str) -> Any: ...


class Router(Protocol):
    """What `backend.db` and its transactions use of the Backend that owns them (adapters/router.py implements it;
    this module does not import it, the router imports this one)."""

    mirror: tuple[str, ...]

    def view(self, *, fresh: bool = False) -> RoutedView: ...
    def timed(self, provider: str, operation: str, call: Callable[[], T]) -> T: ...
    def _check_epoch(self, view: Any) -> None: ...  # the view it was given
    def _adapter(self, name: str) -> Adapter: ...
    def _drop(self, name: str) -> None: ...
    def _read(self, collection: str, call: Callable[[Adapter], T], op: str = "read") -> T: ...
    def _write(self, collection: str, call: Callable[[Adapter], T], op: str = "write") -> T: ...


class Records:
    """The record operations, over some way of running a call (the router's, or one transaction's)."""

    def _read(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        raise NotImplementedError

    def _write(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        raise NotImplementedError

    def find(self, collection: str, where: Where = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        filters = as_filters(where)
        return self._read(collection, "find", lambda a: a.find(collection, filters, order_by=order_by, limit=limit,
                                                                offset=offset))

    def get(self, collection: str, key: Key | Any) -> Record | None:
        return self._read(collection, "get", lambda a: a.get(collection, _key(key)))

    def count(self, collection: str, where: Where = ()) -> int:
        filters = as_filters(where)
        return self._read(collection, "count", lambda a: a.count_matching(collection, filters))

    def insert(self, collection: str, records: Record | Sequence[Record]) -> int:
        rows = _records(records)
        return self._write(collection, "insert", lambda a: a.insert(collection, rows))

    def upsert(self, collection: str, records: Record | Sequence[Record]) -> int:
        rows = _records(records)
        return self._write(collection, "upsert", lambda a: a.upsert(collection, rows))

    def update(self, collection: str, key: Key | Any, changes: Record) -> Record:
        return self._write(collection, "update", lambda a: a.update(collection, _key(key), changes))

    def update_many(self, collection: str, where: Where, changes: Record) -> int:
        """Set `changes` on every record matching `where` (at least one filter); the number of records changed."""
        filters = _some(where, "update_many")
        return self._write(collection, "update_many", lambda a: a.update_where(collection, filters, changes))

    def delete(self, collection: str, keys: Sequence[Key | Any]) -> int:
        wanted = [_key(k) for k in keys]
        return self._write(collection, "delete", lambda a: a.delete(collection, wanted))

    def delete_many(self, collection: str, where: Where) -> int:
        """Delete every record matching `where` (at least one filter); the number deleted."""
        filters = _some(where, "delete_many")
        return self._write(collection, "delete_many", lambda a: a.delete_where(collection, filters))

    def sql(self, statement: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> SqlResult:
        """Raw SQL on PostgreSQL, Supabase and SQLite, parameters bound by the driver (`:name` placeholders). It is a
        write (freezes, fencing, mirrors) unless read_only, which the engine enforces. BACKEND_014 elsewhere."""
        run: Callable[[Adapter], SqlResult] = lambda a: a.sql(statement, params, read_only=read_only)  # noqa: E731
        return self._read("*", "sql", run) if read_only else self._write("*", "sql", run)


class Database(Records):
    """`backend.db`."""

    def __init__(self, backend: Router) -> None:
        self._backend = backend

    def _read(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        return self._backend._read(collection, call, op)

    def _write(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        return self._backend._write(collection, call, op)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The block's calls in one transaction of the provider serving raw SQL (`services.db`, else the active
        one); rolled back if the block raises."""
        backend = self._backend
        view = backend.view(fresh=True)
        backend._check_epoch(view)
        provider, epoch = view.provider_for("*"), view.pointer.epoch  # services.db, else the pointer
        adapter = backend._adapter(provider)
        if not adapter.capabilities.transactions:
            raise InvalidRequest(f"provider {provider!r} ({adapter.kind}) does not offer transactions",
                                 hint="run the calls one by one (each is atomic on its own), or use a provider "
                                      "that has transactions (README: the API table)", provider=provider)
        tx = Transaction(backend, adapter, provider)
        with adapter.transaction():
            yield tx
            now = backend.view(fresh=True).pointer
            if now.epoch != epoch:
                raise StaleEpoch(f"the active backend moved to {now.provider!r} (epoch {now.epoch}) while this "
                                 f"transaction ran on {provider!r} (epoch {epoch}); it was rolled back",
                                 hint="retry the transaction", provider=provider)
        self._replay(tx)

    def _replay(self, tx: Transaction) -> None:
        backend = self._backend
        for name in backend.mirror:
            if name == tx.provider or not tx.writes:
                continue
            mirror = backend._adapter(name)
            try:
                with mirror.transaction():
                    for call in tx.writes:
                        backend.timed(name, "mirror.transaction", functools.partial(call, mirror))
            except BackendError as exc:
                backend._drop(name)
                raise ProviderUnavailable(
                    f"the transaction committed on {tx.provider!r} but not on its mirror {name!r} ({exc.code})",
                    hint="retry it (writes by key are idempotent), or turn mirror mode off", provider=name) from None


class Transaction(Records):
    """What `backend.db.transaction()` yields: the record operations and sql(), on one provider, atomically."""

    def __init__(self, backend: Router, adapter: Adapter, provider: str) -> None:
        self._backend = backend
        self._adapter = adapter
        self.provider = provider
        self.writes: list[Callable[[Adapter], Any]] = []

    def _here(self, collection: str) -> None:
        routed = self._backend.view().provider_for(collection) if collection != "*" else self.provider
        if routed != self.provider:
            raise InvalidRequest(f"{collection!r} is served by {routed!r}, not by {self.provider!r} where this "
                                 "transaction runs", hint="keep a transaction to collections of one provider",
                                 provider=self.provider)

    def _read(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        self._here(collection)
        return self._backend.timed(self.provider, op, lambda: call(self._adapter))

    def _write(self, collection: str, op: str, call: Callable[[Adapter], T]) -> T:
        self._here(collection)
        freeze = self._backend.view(fresh=True).frozen(self.provider, collection)
        if freeze is not None:
            raise WriteFrozen(f"writes to {collection!r} on {self.provider!r} are frozen ({freeze.reason})",
                              hint="retry the transaction: a cutover or failover is in progress",
                              provider=self.provider)
        result = self._backend.timed(self.provider, op, lambda: call(self._adapter))
        self.writes.append(call)
        return result
