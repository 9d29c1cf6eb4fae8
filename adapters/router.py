"""The `Backend` router: what an application calls instead of a provider, so it follows failovers and cutovers.

    backend = Backend.from_config("backends.yaml")
    backend.db.upsert("orders", [{"id": 1, ...}])   # goes to the active provider (backend.upsert(...) too)
    backend.db.find("orders", [("id", "eq", 1)])    # queries, update/delete by query, transactions, SQL: database.py
    backend.status()                                # active provider, health, last check, response time, uptime
    backend.metrics().prometheus()                  # latency percentiles and errors per provider and operation

- Each call goes to the provider named, in this order of precedence, by: the per-collection route in the control
  store (`routes`, set by a gradual migration while it moves that collection); backends.yaml's
  `services.collections.<name>`, then `services.db`; the active-backend pointer. `backend.storage` follows
  `services.storage`, else the pointer. A failover moves only the pointer: what `services:` pins stays where it is
  pinned, up or down. The router's view of routes and pointer is at most `failover.router_follow_s`
  old; a write that meets a fenced, frozen or unreachable provider re-reads the view at once, so it follows a switch
  as soon as the pointer moves.
- A router pinned to an epoch (`Backend(config, epoch=E)`) is a fencing-token holder: once the pointer has moved past
  E, every write through it is refused with StaleEpoch (BACKEND_011) instead of reaching a recovered old primary.
- Write freezes (control store flags, and engine freezes reported as WriteFrozen) are waited out for up to
  `migration.freeze_wait_s`; then the write fails with the retryable WriteFrozen (BACKEND_010).
- Mirror mode (`mirror=True` or a list of provider names) writes each write to the standby(s) too and acknowledges it
  only when every mirror holds it, so an acknowledged write survives the loss of the primary.

One Backend per thread (adapters are not shared between threads). It never imports Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shiftover.adapters.base import Adapter, Filter, Key, Record
from shiftover.adapters.config import Config, ServiceRoutes, load_config
from shiftover.adapters.database import Database
from shiftover.adapters.errors import (
    BackendError,
    ConnectionTimeout,
    ProviderUnavailable,
    StaleEpoch,
    WriteFrozen,
)
from shiftover.adapters.metrics import Metrics, Recorder
from shiftover.adapters.query import Order
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.status import Status, read_status
from shiftover.control.store import ControlStore, Freeze, Pointer

if TYPE_CHECKING:
    from shiftover.adapters.realtime import Realtime
    from shiftover.adapters.storage_api.base import FileStore

T = TypeVar("T")
_POLL_S = 0.05


@dataclass(frozen=True)
class View:
    pointer: Pointer
    routes: dict[str, str]
    freezes: tuple[Freeze, ...]
    read_at: float  # monotonic
    services: ServiceRoutes = field(default_factory=ServiceRoutes)  # backends.yaml's services:

    def provider_for(self, collection: str) -> str:
        """Control-store route > services.collections > services.db > the pointer ("*": raw SQL, no collection)."""
        return self.routes.get(collection) or self.services.provider_for(collection) or self.pointer.provider

    def frozen(self, provider: str, collection: str) -> Freeze | None:
        """The freeze on `collection` of `provider`; for "*" (raw SQL, which may touch any table), any freeze there."""
        return next((f for f in self.freezes if f.provider == provider
                     and (collection == "*" or f.collection in (collection, "*"))), None)


class Backend:
    def __init__(self, config: Config, *, epoch: int | None = None, mirror: bool | Sequence[str] = False,
                 control: ControlStore | None = None) -> None:
        self.config = config
        self.pinned_epoch = epoch
        self._own_control = control is None
        self.control = control or ControlStore(config.control.url.get_secret_value())
        self.follow_s = config.failover.router_follow_s
        self.freeze_wait_s = config.migration.freeze_wait_s
        if mirror is True:
            standbys = sorted((n for n, p in config.providers.items() if p.role == "standby"),
                              key=lambda n: (config.providers[n].priority, n))
            self.mirror: tuple[str, ...] = tuple(standbys[:1])
        else:
            self.mirror = tuple(mirror or ())
        self._adapters: dict[str, Adapter] = {}
        self._view: View | None = None
        self.switches_seen = 0
        self._recorder = Recorder()
        self._db: Database | None = None
        self._stores: dict[str, FileStore] = {}

    @classmethod
    def from_config(cls, path: str | Path, *, epoch: int | None = None, mirror: bool | Sequence[str] = False,
                    control: ControlStore | None = None) -> Backend:
        """A Backend over the providers of a backends.yaml (BACKEND_002 with the field and the fix if it is invalid)."""
        return cls(load_config(path), epoch=epoch, mirror=mirror, control=control)

    @property
    def db(self) -> Database:
        """Records: find/get/count/insert/upsert/update/update_many/delete/delete_many, transaction(), sql()."""
        if self._db is None:
            self._db = Database(self)
        return self._db

    @property
    def storage(self) -> FileStore:
        """Files of the provider `services.storage` names, else of the one the pointer names (its own storage service,
        or `options.files`): upload, download, info, list, delete, metadata, signed URLs (adapters/storage_api).
        Unpinned, it follows a switch as records do."""
        provider = self.config.services.storage or self.view().pointer.provider
        store = self._stores.get(provider)
        if store is None:
            from shiftover.adapters.storage_api import file_store

            store = self._stores[provider] = file_store(self.config, provider)
        return store

    @property
    def realtime(self) -> Realtime:
        """Changes to a collection as they happen: subscribe() (an iterator), on() (a callback), uninstall()
        (adapters/realtime). A subscription is bound to the provider serving the collection when it starts."""
        from shiftover.adapters.realtime import Realtime

        return Realtime(self)

    def status(self) -> Status:
        """The active provider and every provider's health, last check, response time and uptime (no probe is
        made here: they come from the probes health sweeps record)."""
        return read_status(self.config, self.control)

    def metrics(self) -> Metrics:
        """Latency percentiles and error counts of this Backend's calls, per provider and operation;
        `.prometheus()` renders them for a /metrics endpoint."""
        return self._recorder.snapshot()

    def timed(self, provider: str, operation: str, call: Callable[[], T]) -> T:
        """Run `call` against `provider`, recording its latency and, if it raises a Shiftover error, the code."""
        start = time.perf_counter()
        try:
            result = call()
        except BackendError as exc:
            self._recorder.record(provider, operation, (time.perf_counter() - start) * 1000, exc.code)
            raise
        self._recorder.record(provider, operation, (time.perf_counter() - start) * 1000)
        return result

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        for adapter in self._adapters.values():
            adapter.close()
        self._adapters.clear()
        if self._own_control:
            self.control.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the view ------------------------------------------------------------------------------------------------------
    def view(self, *, fresh: bool = False) -> View:
        """The pointer, routes and freezes as last read; re-read when older than router_follow_s or when asked."""
        if fresh or self._view is None or time.monotonic() - self._view.read_at >= self.follow_s:
            pointer = self.control.ensure_pointer(self.config.primary())
            if self._view is not None and pointer.epoch != self._view.pointer.epoch:
                self.switches_seen += 1
            self._view = View(pointer, self.control.routes(), tuple(self.control.freezes()), time.monotonic(),
                              self.config.services)
        return self._view

    @property
    def active(self) -> str:
        return self.view().pointer.provider

    @property
    def epoch(self) -> int:
        return self.view().pointer.epoch

    def _adapter(self, name: str) -> Adapter:
        if name not in self._adapters:
            self._adapters[name] = open_adapter(self.config, name)
        return self._adapters[name]

    def _drop(self, name: str) -> None:
        adapter = self._adapters.pop(name, None)
        if adapter is not None:
            adapter.close()

    def _check_epoch(self, view: View) -> None:
        if self.pinned_epoch is not None and view.pointer.epoch != self.pinned_epoch:
            raise StaleEpoch(
                f"this writer holds epoch {self.pinned_epoch}, but the active backend is {view.pointer.provider!r} "
                f"at epoch {view.pointer.epoch}",
                hint="re-read the active backend (a new Backend, or GET /active from shiftover serve) and retry",
            )

    # -- routing -------------------------------------------------------------------------------------------------------
    def _call(self, provider: str, op: str, call: Callable[[Adapter], T]) -> T:
        return self.timed(provider, op, lambda: call(self._adapter(provider)))

    def _read(self, collection: str, call: Callable[[Adapter], T], op: str = "read") -> T:
        view = self.view()
        provider = view.provider_for(collection)
        try:
            return self._call(provider, op, call)
        except (ProviderUnavailable, ConnectionTimeout):
            self._drop(provider)
            again = self.view(fresh=True)
            if again.provider_for(collection) == provider:
                raise
            return self._call(again.provider_for(collection), op, call)

    def _write(self, collection: str, call: Callable[[Adapter], T], op: str = "write") -> T:
        """Send a write to the provider in charge of `collection`, following switches and waiting out freezes."""
        freeze_deadline: float | None = None
        view = self.view(fresh=self.pinned_epoch is not None)
        while True:
            self._check_epoch(view)
            provider = view.provider_for(collection)
            freeze = view.frozen(provider, collection)
            if freeze is None:
                try:
                    result = self._call(provider, op, call)
                except WriteFrozen as exc:
                    freeze_error: WriteFrozen | None = exc
                except (ProviderUnavailable, ConnectionTimeout):
                    self._drop(provider)
                    view = self.view(fresh=True)
                    if view.provider_for(collection) == provider:
                        raise
                    continue  # the pointer moved: write to the new provider
                else:
                    self._mirror(provider, collection, call, op)
                    return result
            else:
                freeze_error = None
            # frozen, by flag or by the engine: wait for it to lift or for the pointer to move away
            now = time.monotonic()
            freeze_deadline = freeze_deadline if freeze_deadline is not None else now + self.freeze_wait_s
            if now >= freeze_deadline:
                reason = freeze.reason if freeze else (freeze_error.message if freeze_error else "write freeze")
                raise WriteFrozen(
                    f"writes to {collection!r} on {provider!r} are frozen ({reason}); waited {self.freeze_wait_s:g} s",
                    hint="retry: a cutover or failover is in progress", provider=provider)
            time.sleep(_POLL_S)
            view = self.view(fresh=True)

    def _mirror(self, active: str, collection: str, call: Callable[[Adapter], Any], op: str = "write") -> None:
        view = self._view
        for name in self.mirror:
            if name == active or (view is not None and view.frozen(name, collection)):
                continue
            try:
                self._call(name, f"mirror.{op}", call)
            except BackendError as exc:
                self._drop(name)
                raise ProviderUnavailable(
                    f"the write reached {active!r} but not its mirror {name!r} ({exc.code}), so it is not acknowledged",
                    hint="retry the write (writes are idempotent by key), or turn mirror mode off", provider=name,
                ) from None

    # -- the application-facing API (also as backend.db, which adds queries by filter, transactions and SQL) ----------
    def find(self, collection: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        return self._read(collection, lambda a: a.find(collection, where, order_by=order_by, limit=limit,
                                                       offset=offset), "find")

    def get(self, collection: str, key: Key) -> Record | None:
        return self._read(collection, lambda a: a.get(collection, key), "get")

    def count(self, collection: str, where: Sequence[Filter] = ()) -> int:
        return self._read(collection, lambda a: a.count_matching(collection, where), "count")

    def upsert(self, collection: str, records: Sequence[Record]) -> int:
        return self._write(collection, lambda a: a.upsert(collection, records), "upsert")

    def insert(self, collection: str, records: Sequence[Record]) -> int:
        return self._write(collection, lambda a: a.insert(collection, records), "insert")

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        return self._write(collection, lambda a: a.delete(collection, keys), "delete")

    def update(self, collection: str, key: Key, changes: Record) -> Record:
        return self._write(collection, lambda a: a.update(collection, key, changes), "update")
