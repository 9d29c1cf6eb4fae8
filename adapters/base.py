"""The adapter contract: one backend seen as keyed collections of canonical records.

Every provider implements `Adapter`. Methods raise only `adapters.errors` types: each adapter translates its driver's
errors in one place. Keys are tuples (one element per primary-key column) and collections are scanned in key order,
the order Python's `<` gives on those tuples, so key ranges mean the same thing on every engine.

Atomicity promised by every implementation:
- `upsert` and `delete` are idempotent; a batch is applied in one transaction where the engine has them.
- `replace_range` makes the target's rows in a key range exactly the given ones, atomically where the engine can.
- `freeze` / `unfreeze` are idempotent; `unfreeze` of a collection that is not frozen is a no-op.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from shiftover.adapters import canonical
from shiftover.adapters.query import Filter as Filter
from shiftover.adapters.query import Op as Op
from shiftover.adapters.query import Order
from shiftover.adapters.query import matches as matches

Key = tuple[Any, ...]
Record = dict[str, Any]
CanonicalType = canonical.CanonicalType  # the types a canonical record's values have (adapters/canonical.py)


@dataclass(frozen=True)
class Capabilities:
    transactions: bool = False
    bulk_copy: str | None = None  # engine family whose adapters can stream to each other natively
    digest_pushdown: str | None = None  # engine family that computes comparable digests in the engine
    engine_freeze: bool = False  # the engine itself rejects writes from any client during a freeze
    concurrent_writes: bool = True
    change_feed: str | None = None  # how changes(since) sees changes
    capture: str | None = None  # how capture_start/capture_read see every change, deletes included (None: cannot)
    auth: bool = False
    storage: bool = False
    raw_sql: bool = False  # `sql(statement, params)` with bound parameters


@dataclass(frozen=True)
class FieldLimits:
    """What one provider cannot do with a canonical collection's fields; each value says why."""

    dropped: dict[str, str] = field(default_factory=dict)  # not kept when written here
    unverifiable: dict[str, str] = field(default_factory=dict)  # kept when written here, but never read back
    not_carried: tuple[str, ...] = ()  # what the provider has that the canonical record does not carry

    def excluded(self) -> tuple[str, ...]:
        return tuple(sorted({*self.dropped, *self.unverifiable}))


@dataclass(frozen=True)
class Column:
    name: str
    type: CanonicalType
    nullable: bool = True
    precision: int | None = None
    scale: int | None = None
    native: str | None = field(default=None, compare=False)  # "family:ENGINE TYPE", for same-engine copies
    native_def: str | None = field(default=None, compare=False)  # JSON: what restoring `native` needs (pg_types)


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class KeyRange:
    """Keys k with lo < k <= hi; None means unbounded on that side."""

    lo: Key | None
    hi: Key | None

    def contains(self, key: Key) -> bool:
        return (self.lo is None or key > self.lo) and (self.hi is None or key <= self.hi)

    def label(self) -> str:
        lo = "start" if self.lo is None else ",".join(map(str, self.lo))
        hi = "end" if self.hi is None else ",".join(map(str, self.hi))
        return f"({lo} .. {hi}]"


def override_columns(cols: Sequence[Column], types: dict[str, str]) -> list[Column]:
    """options.schemas: replace the types of the named fields, add the fields not seen."""
    out = [Column(c.name, types.get(c.name, c.type), c.nullable, c.precision, c.scale,  # type: ignore[arg-type]
                  c.native, c.native_def) for c in cols]
    return out + [Column(f, t) for f, t in types.items() if f not in {c.name for c in cols}]  # type: ignore[arg-type]


def ranges_from_boundaries(boundaries: Sequence[Key]) -> list[KeyRange]:
    edges: list[Key | None] = [None, *boundaries, None]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


@dataclass(frozen=True)
class RangeDigest:
    range: KeyRange
    count: int
    digest: str


@dataclass(frozen=True)
class Change:
    """One captured change. `record` is None for a delete, and also where the mechanism logs keys only: the consumer
    then reads the key's current record from the source, which makes applying changes idempotent and order-free."""

    seq: int
    key: Key
    op: Literal["upsert", "delete"]
    record: Record | None = None


@dataclass(frozen=True)
class Installed:
    """One object Shiftover put into a provider's database and has not removed yet. `group` says which operation
    removes it: "freeze" (a write freeze or an old primary's fence), "capture" (change capture of a live migration or
    kept for rollback), "canary" (the health probe's canary table, kept while `health.canary` is on), "realtime"
    (what `backend.realtime.subscribe` installed, kept until `backend.realtime.uninstall`)."""

    group: Literal["freeze", "capture", "canary", "realtime"]
    what: str  # "freeze trigger", "change log", "replication slot", ...
    name: str  # the object's own name, schema-qualified where it has a schema
    collection: str | None = None  # the collection a trigger is attached to


@dataclass(frozen=True)
class SqlResult:
    """What a raw SQL statement gave: its rows (as dicts, driver values) and the rows it changed (-1: unknown)."""

    rows: list[Record]
    rowcount: int


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    ok: bool
    latency_ms: float
    error: str | None = None
    checks: tuple[str, ...] = ()
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


class FilesOptions(BaseModel):
    """`options.files` of any provider: the fsspec filesystem the storage service (adapters/storage_api) keeps its
    files in, e.g. `file:///var/data/files`, `memory://`, `s3://my-bucket/files`."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, description="an fsspec URL: the root under which each bucket is a folder")
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False,
                                            description="the filesystem's options (s3: key, secret, endpoint_url…); "
                                            "never shown in a message")


class Adapter(abc.ABC):
    """One backend. Opened per task with `with open_adapter(provider) as a:`; never shared between threads."""

    kind: ClassVar[str]
    # What this kind of adapter can do: class data, never reassigned. `capabilities` is what one instance offers.
    offers: ClassVar[Capabilities]
    # Modules the adapter imports on first use (drivers, dialects); `registry.preload` imports them ahead of time.
    driver_modules: ClassVar[tuple[str, ...]] = ()

    class Options(BaseModel):
        """Provider options from backends.yaml; adapters extend this."""

        model_config = {"extra": "forbid"}
        files: FilesOptions | None = Field(None, description="where the storage service keeps this provider's files "
                                           "(an fsspec filesystem); default: the provider's own Storage, if any")

    def __init__(self, name: str, url: str | None, options: BaseModel) -> None:
        self.name = name
        self.url = url
        self.options = options

    @cached_property
    def capabilities(self) -> Capabilities:
        """What this instance offers: the kind's `offers`, less what its options leave out (`narrowed`)."""
        return self.narrowed(self.offers)

    def narrowed(self, offers: Capabilities) -> Capabilities:
        """`offers` less the services this instance's options leave out (a kind with optional services overrides it;
        mixins narrow through super())."""
        return offers

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- health -------------------------------------------------------------------------------------------------
    def probe(self, *, canary: bool = False) -> ProbeResult:
        """A real round trip; never raises: a failure is reported in the result."""
        from shiftover.adapters.errors import BackendError

        start = time.perf_counter()
        try:
            checks = self._probe(canary=canary)
        except BackendError as exc:
            return ProbeResult(self.name, False, (time.perf_counter() - start) * 1000, str(exc))
        return ProbeResult(self.name, True, (time.perf_counter() - start) * 1000, None, tuple(checks))

    @abc.abstractmethod
    def _probe(self, *, canary: bool) -> list[str]:
        """Connect and read (and, with canary, write/read/delete a canary); return the checks done."""

    # -- catalogue ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def collections(self) -> list[str]: ...

    @abc.abstractmethod
    def schema(self, name: str) -> CollectionSchema:
        """Raises CollectionNotFound."""

    @abc.abstractmethod
    def create_collection(self, schema: CollectionSchema) -> None:
        """Create the collection if absent (idempotent); its types mapped to this engine's."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abc.abstractmethod
    def count(self, name: str) -> int: ...

    def key_of(self, name: str) -> tuple[str, ...]:
        return self.schema(name).key

    def field_limits(self, name: str) -> FieldLimits:
        """What this provider cannot keep, or read back, of the collection's fields (users and files); none here."""
        return FieldLimits()

    # -- bulk data paths ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        """Records with after < key <= until in key order, at most `limit` of them."""

    def scan_range(self, name: str, rng: KeyRange, *, batch: int) -> Iterator[list[Record]]:
        key = self.key_of(name)
        after = rng.lo
        while True:
            rows = self.scan(name, after=after, until=rng.hi, limit=batch)
            if not rows:
                return
            yield rows
            if len(rows) < batch:
                return
            after = tuple(rows[-1][k] for k in key)

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        """Every `every`-th key in key order: boundaries that split the collection into equal chunks."""
        key = self.key_of(name)
        out: list[Key] = []
        after: Key | None = None
        while True:
            rows = self.scan(name, after=after, limit=every)
            if len(rows) < every:
                return out
            after = tuple(rows[-1][k] for k in key)
            out.append(after)

    @abc.abstractmethod
    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        """Records changed after the watermark, oldest first."""

    @abc.abstractmethod
    def upsert(self, name: str, records: Sequence[Record]) -> int: ...

    @abc.abstractmethod
    def delete(self, name: str, keys: Sequence[Key]) -> int: ...

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        """Make the rows in `rng` exactly `records` (delete the extra ones, upsert the rest)."""
        key = self.key_of(name)
        wanted = {tuple(r[k] for k in key) for r in records}
        stale: list[Key] = []
        for rows in self.scan_range(name, rng, batch=5000):
            stale.extend(k for k in (tuple(r[c] for c in key) for r in rows) if k not in wanted)
        if stale:
            self.delete(name, stale)
        return self.upsert(name, records)

    def digests(self, name: str, ranges: Sequence[KeyRange], *, batch: int = 5000) -> list[RangeDigest]:
        """(count, digest) per key range from canonical records; engines with pushdown override `pushdown_digests`."""
        out = []
        for rng in ranges:
            n, total = 0, 0
            for rows in self.scan_range(name, rng, batch=batch):
                n += len(rows)
                total += sum(canonical.record_hash(r) for r in rows)
            out.append(RangeDigest(rng, n, canonical.combine(total)))
        return out

    def pushdown_methods(self, name: str, columns: Sequence[str]) -> tuple[str, ...]:
        """The in-engine digest functions usable on these columns, fastest first (engines with digest_pushdown)."""
        raise NotImplementedError(f"{self.kind} computes digests on the client")

    def pushdown_digests(self, name: str, ranges: Sequence[KeyRange], columns: Sequence[str],
                         method: str) -> list[RangeDigest]:
        raise NotImplementedError(f"{self.kind} computes digests on the client")

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange,
                        progress: Callable[[int], None] | None = None) -> int:
        """Native engine-to-engine copy of one key range; only when capabilities.bulk_copy families match.
        `progress`, where the engine's copy passes through here, is told the rows copied so far as it goes."""
        raise NotImplementedError(f"{self.kind} has no native bulk copy")

    def create_for_bulk_copy(self, schema: CollectionSchema) -> None:
        """Create a collection that `copy_range_from` is about to fill. An engine that builds an index faster in one
        pass after the load than row by row during it may leave the key out here; `finish_bulk_copy` adds it."""
        self.create_collection(schema)

    def finish_bulk_copy(self, name: str) -> None:  # noqa: B027 - nothing was left out by default
        """Add what `create_for_bulk_copy` left out of `name`, if anything. Idempotent: a resumed or later run calls it
        again, and it does nothing to a collection it did not create."""

    # -- write freeze (engine-enforced where possible) ---------------------------------------------------------------
    def freeze(self, names: Sequence[str], *, reason: str) -> None:  # noqa: B027 - engines without one rely on the router
        pass

    def unfreeze(self, names: Sequence[str]) -> None:  # noqa: B027
        pass

    def frozen(self) -> list[str]:
        return []

    def installed(self) -> list[Installed]:
        """What Shiftover has installed in this provider's database right now (triggers, tables, functions, slots).
        Engines that install nothing keep this default."""
        return []

    # -- application-facing CRUD ----------------------------------------------------------------------------------
    # Filters, NULLs, order, offset and limit mean what adapters/query.py says, on every provider.
    @abc.abstractmethod
    def find(
        self,
        name: str,
        where: Sequence[Filter] = (),
        *,
        order_by: Order = (),
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Record]: ...

    def served_natively(self, name: str) -> bool:
        """Whether `name` is one of the engine's own collections (so the engine's pushdowns apply), rather than one a
        mixin serves through another API (users, files)."""
        return True

    def count_matching(self, name: str, where: Sequence[Filter]) -> int:
        """How many records match `where` (all of them without filters); engines count in the engine."""
        return self.count(name) if not where else len(self.find(name, where))

    def update_where(self, name: str, where: Sequence[Filter], changes: Record) -> int:
        """Set `changes` on every record matching `where`; the number of records changed. Key fields cannot change.
        Atomic where the engine has transactions."""
        key = self._refuse_key_changes(name, changes)
        with self._atomic():
            keys = [{k: r[k] for k in key} for r in self.find(name, where)]
            if keys and changes:
                self.upsert(name, [{**k, **changes} for k in keys])
        return len(keys)

    def delete_where(self, name: str, where: Sequence[Filter]) -> int:
        """Delete every record matching `where`; the number deleted. Atomic where the engine has transactions."""
        key = self.key_of(name)
        with self._atomic():
            return self.delete(name, [tuple(r[k] for k in key) for r in self.find(name, where)])

    def sql(self, statement: str, params: dict[str, Any] | None = None, *, read_only: bool = False) -> SqlResult:
        """Raw SQL with bound parameters (`:name` placeholders), on engines with `capabilities.raw_sql`."""
        from shiftover.adapters.errors import InvalidRequest

        raise InvalidRequest(f"{self.kind} does not run SQL", hint="use find/count/update_where/delete_where, which "
                             "every provider offers", provider=self.name)

    def _refuse_key_changes(self, name: str, changes: Record) -> tuple[str, ...]:
        from shiftover.adapters.errors import InvalidRequest

        key = self.key_of(name)
        if moved := [k for k in key if k in changes]:
            raise InvalidRequest(f"an update of {name!r} cannot change its key field(s) {', '.join(moved)}",
                                 hint="insert the record under its new key and delete the old one", provider=self.name)
        return key

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        if self.capabilities.transactions:
            with self.transaction():
                yield
        else:
            yield

    def get(self, name: str, key: Key) -> Record | None:
        cols = self.key_of(name)
        rows = self.find(name, [Filter(c, "eq", v) for c, v in zip(cols, key, strict=True)], limit=1)
        return rows[0] if rows else None

    def insert(self, name: str, records: Sequence[Record]) -> int:
        return self.upsert(name, records)

    def update(self, name: str, key: Key, changes: Record) -> Record:
        from shiftover.adapters.errors import InvalidRequest

        current = self.get(name, key)
        if current is None:
            raise InvalidRequest(f"no record with key {key} in {name!r}", provider=self.name)
        current.update(changes)
        self.upsert(name, [current])
        return current

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Run several calls atomically where `capabilities.transactions`; otherwise refuse."""
        from shiftover.adapters.errors import InvalidRequest

        raise InvalidRequest(f"{self.kind} does not offer transactions", provider=self.name)
        yield self  # pragma: no cover

    # -- change capture (blue-green and gradual catch-up; rollback) ------------------------------------------------
    # A capture sees every change to the named collections from `capture_start` on, deletes included, and keeps it
    # until acknowledged, across crashes of the reader. Changes are delivered at least once: a reader applies them by
    # key (re-reading the source where `record` is None), acknowledges them with `capture_ack`, and a change read twice
    # is harmless. Engines without a mechanism keep these defaults and report `capabilities.capture = None`.
    def capture_start(self, names: Sequence[str]) -> None:
        """Begin capturing changes to `names` (idempotent: an existing capture and its pending changes are kept)."""
        from shiftover.adapters.errors import InvalidRequest

        raise InvalidRequest(
            f"{self.kind} cannot capture changes with deletes, so it cannot stay in sync while the app writes",
            hint="migrate it with --strategy immediate (a write freeze for the whole copy)", provider=self.name)

    def capture_read(self, name: str, after_seq: int = 0, limit: int = 1000) -> list[Change]:
        """Unacknowledged changes to `name` with seq > after_seq, oldest first."""
        self.capture_start([name])
        return []

    def capture_ack(self, name: str, seqs: Sequence[int]) -> None:
        """Forget the given changes: they were applied. Unknown seqs are ignored."""
        self.capture_start([name])

    def capture_pending(self, name: str) -> int:
        """How many changes to `name` wait to be read and acknowledged: the lag of a catch-up."""
        self.capture_start([name])
        return 0

    def capture_stop(self, names: Sequence[str]) -> None:  # noqa: B027 - nothing to remove without a mechanism
        """Stop capturing and drop pending changes (idempotent)."""

    def capturing(self) -> list[str]:
        return []

    @contextmanager
    def run_lock(self) -> Iterator[bool]:
        """Hold the engine's own lock for one Shiftover run while the block runs, where the engine has a cheap one
        (PostgreSQL: a session advisory lock, dropped with the session if the holder dies); yields False when another
        session holds it. Engines without one yield True: the control store's lease is the guard there."""
        yield True

    @contextmanager
    def bypass_freeze(self) -> Iterator[Self]:
        """Calls made inside this block write through this adapter's own engine freeze (rollback, final delta), while
        every other client stays refused. Engines without an engine freeze have nothing to bypass."""
        yield self
