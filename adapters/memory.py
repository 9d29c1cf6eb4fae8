"""An in-process backend: `memory://NAME`. Adapters opened on the same NAME in one process share the data, as an
in-memory database would; it is gone when the process ends. Used by tests and demos, and to test failure paths:
options `fail_rate` (0..1, the share of calls that raise ProviderUnavailable), `fail_ops` (which calls fail) and
`latency_ms` dial failures in; `MemoryAdapter.store(NAME).down = True` takes the whole backend down.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from pydantic import Field

from shiftover.adapters.base import Adapter, Capabilities, Change, CollectionSchema, Column, Filter, Key, Record
from shiftover.adapters.errors import (
    CollectionNotFound,
    ConfigInvalid,
    InvalidRequest,
    ProviderUnavailable,
    WriteFrozen,
)
from shiftover.adapters.query import Order, check_window, matches, ordered, window


@dataclass
class _Collection:
    schema: CollectionSchema
    rows: dict[Key, Record] = field(default_factory=dict)
    order: list[Key] = field(default_factory=list)
    touched: dict[Key, dt.datetime] = field(default_factory=dict)


@dataclass
class MemoryStore:
    collections: dict[str, _Collection] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    down: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)
    captured: set[str] = field(default_factory=set)
    change_log: dict[int, tuple[str, Key, str]] = field(default_factory=dict)  # seq -> (collection, key, op)
    next_seq: int = 1
    bypass: int = 0
    # realtime (adapters/realtime): every write as (seq, collection, key, "insert"|"update"|"delete", time)
    feed: deque[tuple[int, str, Key, str, dt.datetime]] = field(default_factory=lambda: deque(maxlen=10_000))
    feed_seq: int = 0
    seeded: bool = False  # options.fixtures loaded (once per store)


def _feed(store: MemoryStore, name: str, key: Key, op: str) -> None:
    store.feed_seq += 1
    store.feed.append((store.feed_seq, name, key, op, dt.datetime.now(dt.timezone.utc)))


_STORES: dict[str, MemoryStore] = {}
_STORES_LOCK = threading.Lock()


class MemoryAdapter(Adapter):
    kind = "memory"
    offers = Capabilities(transactions=True, engine_freeze=True, change_feed="write time",
                                capture="in-process write log")

    class Options(Adapter.Options):
        fail_rate: float = Field(0.0, ge=0, le=1)
        fail_ops: list[str] = Field(default_factory=list, description="empty means every call may fail")
        latency_ms: float = Field(0.0, ge=0)
        seed: int | None = None
        fixtures: str | None = Field(None, description="mock mode: a folder of <collection>.json files (a list of "
                                     "records, or {\"key\": [...], \"records\": [...]}) loaded into an empty store "
                                     "on first use; a relative path is taken beside backends.yaml")

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._rng = random.Random(options.seed)

    @classmethod
    def store(cls, store_name: str) -> MemoryStore:
        with _STORES_LOCK:
            return _STORES.setdefault(store_name, MemoryStore())

    @classmethod
    def reset(cls, store_name: str | None = None) -> None:
        with _STORES_LOCK:
            if store_name is None:
                _STORES.clear()
            else:
                _STORES.pop(store_name, None)

    @property
    def _store(self) -> MemoryStore:
        store = self.store((self.url or "memory://default").removeprefix("memory://") or "default")
        if self.options.fixtures and not store.seeded:
            with store.lock:
                if not store.seeded:
                    _load_fixtures(store, Path(self.options.fixtures), self.name)
                    store.seeded = True
        return store

    def _call(self, op: str) -> MemoryStore:
        store = self._store
        if self.options.latency_ms:
            time.sleep(self.options.latency_ms / 1000)
        if store.down:
            raise ProviderUnavailable("the memory backend is down", hint="retry later", provider=self.name)
        if self.options.fail_rate and (not self.options.fail_ops or op in self.options.fail_ops):
            if self._rng.random() < self.options.fail_rate:
                raise ProviderUnavailable(f"injected failure in {op}", hint="retry", provider=self.name)
        return store

    def _coll(self, store: MemoryStore, name: str) -> _Collection:
        try:
            return store.collections[name]
        except KeyError:
            raise CollectionNotFound(f"no collection {name!r}", provider=self.name) from None

    def _probe(self, *, canary: bool) -> list[str]:
        self._call("probe")
        return ["connect", "read"] + (["write", "delete"] if canary else [])

    def collections(self) -> list[str]:
        return sorted(self._call("collections").collections)

    def schema(self, name: str) -> CollectionSchema:
        return self._coll(self._call("schema"), name).schema

    def create_collection(self, schema: CollectionSchema) -> None:
        store = self._call("create_collection")
        with store.lock:
            store.collections.setdefault(schema.name, _Collection(schema))

    def drop_collection(self, name: str) -> None:
        store = self._call("drop_collection")
        with store.lock:
            store.collections.pop(name, None)

    def count(self, name: str) -> int:
        return len(self._coll(self._call("count"), name).rows)

    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        store = self._call("scan")
        with store.lock:
            coll = self._coll(store, name)
            start = 0 if after is None else bisect.bisect_right(coll.order, after)
            out: list[Record] = []
            for key in coll.order[start:]:
                if until is not None and key > until or len(out) >= limit:
                    break
                out.append(copy.deepcopy(coll.rows[key]))
            return out

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        store = self._call("changes")
        with store.lock:
            coll = self._coll(store, name)
            picked = sorted((t, k) for k, t in coll.touched.items() if since is None or t > since)
            return [copy.deepcopy(coll.rows[k]) for _, k in picked[:limit] if k in coll.rows]

    def _writable(self, store: MemoryStore, name: str) -> _Collection:
        if (name in store.frozen or "*" in store.frozen) and not store.bypass:
            raise WriteFrozen(f"writes to {name!r} are frozen", hint="retry after the cutover", provider=self.name)
        return self._coll(store, name)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        store = self._call("upsert")
        with store.lock:
            coll = self._writable(store, name)
            now = dt.datetime.now(dt.timezone.utc)
            for rec in records:
                try:
                    key = tuple(rec[k] for k in coll.schema.key)
                except KeyError as exc:
                    raise InvalidRequest(f"record in {name!r} lacks key field {exc}", provider=self.name) from None
                new = key not in coll.rows
                if new:
                    bisect.insort(coll.order, key)
                    coll.rows[key] = {c: None for c in coll.schema.names}
                coll.rows[key].update(copy.deepcopy(rec))
                coll.touched[key] = now
                self._log_change(store, name, key, "upsert")
                _feed(store, name, key, "insert" if new else "update")
            return len(records)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        store = self._call("delete")
        with store.lock:
            coll = self._writable(store, name)
            n = 0
            for key in keys:
                if coll.rows.pop(tuple(key), None) is not None:
                    coll.order.remove(tuple(key))
                    coll.touched.pop(tuple(key), None)
                    self._log_change(store, name, tuple(key), "delete")
                    _feed(store, name, tuple(key), "delete")
                    n += 1
            return n

    def find(
        self,
        name: str,
        where: Sequence[Filter] = (),
        *,
        order_by: Order = (),
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Record]:
        check_window(offset, limit)
        store = self._call("find")
        with store.lock:
            coll = self._coll(store, name)
            self._known_fields(coll, [f.field for f in where] + [f for f, _ in order_by])
            rows = [copy.deepcopy(coll.rows[k]) for k in coll.order if matches(coll.rows[k], where)]
        return window(ordered(rows, order_by), offset, limit)

    def count_matching(self, name: str, where: Sequence[Filter]) -> int:
        store = self._call("count")
        with store.lock:
            coll = self._coll(store, name)
            self._known_fields(coll, [f.field for f in where])
            return sum(1 for row in coll.rows.values() if matches(row, where))

    def _known_fields(self, coll: _Collection, fields: Sequence[str]) -> None:
        if unknown := [f for f in fields if f not in coll.schema.names]:
            raise InvalidRequest(f"{coll.schema.name!r} has no field {unknown[0]!r}", provider=self.name)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        store = self._call("transaction")
        with store.lock:
            saved, fed = copy.deepcopy(store.collections), store.feed_seq
            try:
                yield self
            except BaseException:
                store.collections = saved
                while store.feed and store.feed[-1][0] > fed:  # a rolled-back write was never seen
                    store.feed.pop()
                store.feed_seq = fed
                raise

    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        store = self._call("freeze")
        with store.lock:
            store.frozen.update(names)

    def unfreeze(self, names: Sequence[str]) -> None:
        store = self._store
        with store.lock:
            store.frozen.difference_update(names)

    def frozen(self) -> list[str]:
        return sorted(self._store.frozen)

    # -- change capture: the store's own write log (in-process only: it does not survive the process) ------------------
    def _log_change(self, store: MemoryStore, name: str, key: Key, op: str) -> None:
        if name in store.captured:
            store.change_log[store.next_seq] = (name, key, op)
            store.next_seq += 1

    def capture_start(self, names: Sequence[str]) -> None:
        store = self._call("capture_start")
        with store.lock:
            for name in names:
                self._coll(store, name)
                store.captured.add(name)

    def capture_read(self, name: str, after_seq: int = 0, limit: int = 1000) -> list[Change]:
        store = self._call("capture_read")
        with store.lock:
            picked = [Change(seq, key, op)  # type: ignore[arg-type]
                      for seq, (coll, key, op) in sorted(store.change_log.items()) if coll == name and seq > after_seq]
        return picked[:limit]

    def capture_ack(self, name: str, seqs: Sequence[int]) -> None:
        store = self._call("capture_ack")
        with store.lock:
            for seq in seqs:
                if store.change_log.get(seq, ("",))[0] == name:
                    del store.change_log[seq]

    def capture_pending(self, name: str) -> int:
        store = self._call("capture_pending")
        with store.lock:
            return sum(1 for coll, _, _ in store.change_log.values() if coll == name)

    def capture_stop(self, names: Sequence[str]) -> None:
        store = self._store
        with store.lock:
            store.captured.difference_update(names)
            for seq in [s for s, (coll, _, _) in store.change_log.items() if coll in names]:
                del store.change_log[seq]

    def capturing(self) -> list[str]:
        return sorted(self._store.captured)

    @contextmanager
    def bypass_freeze(self) -> Iterator[Self]:
        store = self._store
        with store.lock:
            store.bypass += 1
            try:
                yield self
            finally:
                store.bypass -= 1


def _load_fixtures(store: MemoryStore, folder: Path, provider: str) -> None:
    """Mock mode: each `<collection>.json` in `folder` becomes a collection, unless the store already has it. The key
    is the file's `key`, else `id`; column types are inferred from the values (as for a schemaless source)."""
    from shiftover.adapters import canonical

    if not folder.is_dir():
        raise ConfigInvalid(f"options.fixtures: {str(folder)!r} is not a folder", provider=provider,
                            hint="a folder of <collection>.json files, relative to backends.yaml")
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigInvalid(f"options.fixtures: {path.name} is not JSON ({exc})", provider=provider,
                                hint="a list of records, or {\"key\": [...], \"records\": [...]}") from None
        records = data.get("records", []) if isinstance(data, dict) else data
        key = tuple(data.get("key", ["id"])) if isinstance(data, dict) else ("id",)
        if not isinstance(records, list) or not all(isinstance(r, dict) and all(k in r for k in key)
                                                     for r in records):
            raise ConfigInvalid(f"options.fixtures: {path.name} must hold records that each have {list(key)}",
                                provider=provider, hint="a list of JSON objects with the key fields")
        names = sorted({f for r in records for f in r})
        columns = tuple(Column(n, canonical.merge_types({canonical.type_of(r.get(n)) for r in records}), n not in key)
                        for n in names)
        coll = store.collections.setdefault(path.stem, _Collection(CollectionSchema(path.stem, columns, key)))
        if not coll.rows:
            for rec in records:
                k = tuple(rec[f] for f in key)
                coll.rows[k] = dict(rec)
            coll.order = sorted(coll.rows)

