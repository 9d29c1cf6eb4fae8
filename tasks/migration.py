"""Small retryable tasks that a migration is made of. Each opens the adapters it needs and closes them again.

Tasks retry only what a retry can fix (`shiftover.adapters.errors.TransientError`); a permanent error fails at once.
Every write is idempotent: a chunk replaces exactly its key range on the target, so a retried or resumed chunk
never duplicates a record.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from shiftover.adapters import canonical, mapping
from shiftover.adapters.base import (
    Adapter,
    CollectionSchema,
    Key,
    KeyRange,
    RangeDigest,
    Record,
    ranges_from_boundaries,
)
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from shiftover.expectations.suites import CollectionEvidence, ValidationResult, validate
from shiftover.tasks.digests import (
    BATCHED,
    SourceDigests,
    collection_mapping,
    copy_path,
    digest_method,
    measure,
    source_hasher,
)
from shiftover.tasks.retry import RETRYABLE


def control_store(config: Config) -> ControlStore:
    return ControlStore(config.control.url.get_secret_value())


@dataclass(frozen=True)
class CollectionPlan:
    name: str
    schema: CollectionSchema
    rows: int
    ranges: tuple[KeyRange, ...]
    path: str  # "binary COPY" (PostgreSQL), "native copy (sqlite)" or "batched upsert" (COPY_PATHS)
    target_exists: bool
    mapping: tuple[str, ...] = ()  # what changes shape on the way (shiftover.adapters.mapping), for the report
    columns: tuple[tuple[str, str, str], ...] = ()  # (source field, target column, type) when the shape changes
    excluded: tuple[str, ...] = ()  # fields the target drops or cannot give back: left out of the digests
    notes: tuple[str, ...] = ()  # what the report must say: fields dropped, RLS policies missing


@dataclass(frozen=True)
class ChunkPlan:
    config_path: str
    run_id: str
    source: str
    target: str
    collection: str
    idx: int
    range: KeyRange
    batch_size: int
    digest: bool = False  # also digest the source's range (a frozen source: the value holds until the cutover)
    excluded: tuple[str, ...] = ()  # fields the digests leave out (CollectionPlan.excluded)


@dataclass(frozen=True)
class ChunkResult:
    collection: str
    idx: int
    rows: int
    seconds: float
    source_digest: RangeDigest | None = None  # with ChunkPlan.digest: the source range's (count, digest)
    digest_method: str | None = None  # how it was computed (the label of `digest_method`)


@task(**RETRYABLE)
def plan_collections(config_path: str, source: str, target: str, collections: Sequence[str] | None,
                     chunk_rows: int) -> list[CollectionPlan]:
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        names = list(collections) if collections else src.collections()
        existing = set(dst.collections())
        plans = []
        for name in names:
            src.key_of(name)  # refuses a collection without a primary key, naming it
            shape = collection_mapping(config, src, dst, name)
            ranges = ranges_from_boundaries(_without_empty_tail(src, name, src.key_boundaries(name, chunk_rows)))
            excluded, notes = field_limits(src, dst, name, name in existing)
            notes += tuple(mapping.type_fidelity(src.schema(name), source_kind=src.kind, target_kind=dst.kind))
            plans.append(CollectionPlan(name, shape.target, src.count(name), tuple(ranges), copy_path(src, dst),
                                        name in existing, tuple(shape.describe()) if not shape.identity else (),
                                        tuple(shape.table()) if not shape.identity else (), excluded, notes))
        return plans


def _without_empty_tail(src: Adapter, name: str, bounds: list[Key]) -> list[Key]:
    """The boundaries without the last one when it is the last key (a count that is a multiple of the chunk size): the
    open range after it would be an empty chunk, a task that copies and measures nothing. Its records, if any arrive
    before the freeze, fall in the range before it, which is open-ended then."""
    return bounds[:-1] if bounds and not src.scan(name, after=bounds[-1], limit=1) else bounds


@task(**RETRYABLE)
def freeze_source(config_path: str, source: str, collections: Sequence[str], run_id: str, reason: str) -> list[str]:
    """Record the freeze in the control store, then make the engine itself refuse writes where it can."""
    config = load_config(config_path)
    with control_store(config) as control, open_adapter(config, source) as src:
        control.set_freeze(source, collections, run_id=run_id, reason=reason)
        src.freeze(collections, reason=reason)
        return src.frozen()


@task(**RETRYABLE)
def unfreeze_source(config_path: str, source: str, collections: Sequence[str], run_id: str | None = None) -> None:
    """Lift the freeze; with `run_id`, only on the collections that run froze (or nobody owns): a freeze is owned by
    its run, and another run's stays."""
    config = load_config(config_path)
    with control_store(config) as control, open_adapter(config, source) as src:
        if run_id is not None:
            others = {f.collection for f in control.freezes(source) if f.run_id != run_id}
            collections = [c for c in collections if c not in others]
        src.unfreeze(collections)
        control.clear_freeze(source, collections, only_run=run_id)


@task(**RETRYABLE)
def prepare_target(config_path: str, target: str, schemas: Sequence[CollectionSchema],
                   bulk: Sequence[str] = ()) -> list[str]:
    """Create the target collections that do not exist yet; returns the ones created. Those named in `bulk` are about
    to be filled by the engine's bulk copy and may be created without their key (`finish_target` adds it). One
    that an interrupted bulk copy left without its key gets it now unless this run bulk-copies it again."""
    config = load_config(config_path)
    created = []
    with open_adapter(config, target) as dst:
        existing = set(dst.collections())
        for schema in schemas:
            if schema.name in existing:
                if schema.name not in bulk:
                    dst.finish_bulk_copy(schema.name)
            elif schema.name in bulk:
                dst.create_for_bulk_copy(schema)
                created.append(schema.name)
            else:
                dst.create_collection(schema)
                created.append(schema.name)
    return created


@task(**RETRYABLE)
def finish_target(config_path: str, target: str, names: Sequence[str]) -> None:
    """After the bulk copy: add the keys that `prepare_target` left out (one sorted index build per table)."""
    config = load_config(config_path)
    with open_adapter(config, target) as dst:
        for name in names:
            dst.finish_bulk_copy(name)


def pause_point(name: str) -> None:
    """Test hook: with SHIFTOVER_TEST_PAUSE_AT=name the run announces itself in SHIFTOVER_TEST_PAUSE_FILE and
    sleeps, so a test can kill -9 it at a known point. A no-op otherwise.
    "copy" pauses every copy worker after its first chunk, so a kill there always leaves chunks to do."""
    if os.environ.get("SHIFTOVER_TEST_PAUSE_AT") != name:
        return
    marker = os.environ.get("SHIFTOVER_TEST_PAUSE_FILE")
    if marker:
        Path(marker).write_text(name, encoding="utf-8")
    time.sleep(float(os.environ.get("SHIFTOVER_TEST_PAUSE_S", "120")))


@task(**RETRYABLE)
def copy_chunk(plan: ChunkPlan) -> ChunkResult:
    """Make the target's key range equal to the source's: native COPY when both engines allow, else batches.

    With `plan.digest` (a frozen source) the source range is digested on the way, as validation would digest it: in
    the engine right after its COPY, while its pages are still in the server's cache, or from the very records the
    batches carry. Validation then reads only the target."""
    config = load_config(plan.config_path)
    with open_adapter(config, plan.source) as src, open_adapter(config, plan.target) as dst:
        return copy_one(config, src, dst, plan)


def copy_one(config: Config, src: Adapter, dst: Adapter, plan: ChunkPlan) -> ChunkResult:
    """`copy_chunk` with open adapters (shiftover.tasks.batches copies many small collections with one pair)."""
    start = time.perf_counter()
    digest: RangeDigest | None = None
    label: str | None = None
    function: str | None = None
    bulk = copy_path(src, dst) != BATCHED
    shape = collection_mapping(config, src, dst, plan.collection) if plan.digest or not bulk else None
    if plan.digest:
        assert shape is not None
        label, function = digest_method(src, dst, src.schema(plan.collection), dst.schema(plan.collection), shape,
                                        plan.excluded)
    if bulk and plan.digest and function and src.capabilities.digest_pushdown == "sqlite":
        # SQLite: the copy runs in the engine without the GIL, so the frozen source's range is digested meanwhile
        columns = sorted(src.schema(plan.collection).names)
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(src.pushdown_digests, plan.collection, [plan.range], columns, function)
            rows = dst.copy_range_from(src, plan.collection, plan.range)
            (digest,) = job.result()
    elif bulk:
        with ChunkMeter(plan) as meter:  # rows so far, where the engine's copy passes through the adapter
            rows = dst.copy_range_from(src, plan.collection, plan.range, meter.report)
        if plan.digest and function:
            columns = sorted(src.schema(plan.collection).names)
            (digest,) = src.pushdown_digests(plan.collection, [plan.range], columns, function)
    else:
        assert shape is not None
        hasher = source_hasher(shape, plan.excluded) if plan.digest and not function else None
        encoded = sorted(src.schema(plan.collection).names) if plan.digest and function else None
        rows, total = _copy_batches(src, dst, plan, shape, hasher, encoded)
        if hasher is not None or encoded is not None:
            digest = RangeDigest(plan.range, rows, canonical.combine(total))
    with control_store(config) as control:
        control.chunk_done(plan.run_id, plan.collection, plan.idx, rows)
    pause_point("copy")
    return ChunkResult(plan.collection, plan.idx, rows, time.perf_counter() - start, digest,
                       label if digest is not None else None)


PROGRESS_EVERY_S = 0.5  # the least time between two progress writes of one chunk


class ChunkMeter:
    """Tells the control store how many rows a chunk being copied has written, at most every PROGRESS_EVERY_S, so the
    progress artifact and the CLI's bar move within a chunk. A chunk that ends sooner never opens the store."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self._control: ControlStore | None = None
        self._due = time.monotonic() + PROGRESS_EVERY_S

    def __enter__(self) -> ChunkMeter:
        return self

    def report(self, rows: int) -> None:
        if time.monotonic() < self._due:
            return
        if self._control is None:
            self._control = control_store(load_config(self.plan.config_path))
        self._control.chunk_progress(self.plan.run_id, self.plan.collection, self.plan.idx, rows)
        self._due = time.monotonic() + PROGRESS_EVERY_S

    def __exit__(self, *exc: object) -> None:
        if self._control is not None:
            self._control.close()


def _copy_batches(src: Adapter, dst: Adapter, plan: ChunkPlan, shape: mapping.CollectionMapping,
                  hasher: Callable[[Record], int] | None = None,
                  encoded: Sequence[str] | None = None) -> tuple[int, int]:
    """Copies the range batch by batch in the target's `shape`; returns the records copied and, with `hasher`, the sum
    of their hashes, or with `encoded` (columns) the sum of the row hashes of what the SQLite target stored."""
    key = src.key_of(plan.collection)
    lo, rows, total = plan.range.lo, 0, 0
    with closing(_prefetched(src.scan_range(plan.collection, plan.range, batch=plan.batch_size))) as batches, \
            ChunkMeter(plan) as meter:
        batch = next(batches, [])
        while True:
            following = next(batches, None) if len(batch) == plan.batch_size else None
            hi = tuple(batch[-1][k] for k in key) if following else plan.range.hi
            if encoded is not None:
                total += dst.replace_range_hashed(plan.collection, KeyRange(lo, hi), batch, encoded)  # type: ignore
            elif shape.identity:
                dst.replace_range(plan.collection, KeyRange(lo, hi), batch)
            elif shape.reorders_keys:  # the source's range is no range on the target: upsert (extras fail the gate)
                dst.upsert(plan.collection, shape.records(batch))
            else:
                dst.replace_range(plan.collection, KeyRange(lo, hi), shape.records(batch))
            rows += len(batch)
            meter.report(rows)
            if hasher is not None:
                total += sum(hasher(r) for r in batch)
            if not following:
                return rows, total
            lo, batch = hi, following


def _prefetched(batches: Iterator[list[Record]], depth: int = 2) -> Generator[list[Record], None, None]:
    """The same batches, read ahead by one thread (the source adapter's only user meanwhile) while the caller writes:
    the source's read and the target's write overlap. A read error is raised where the caller would have met it."""
    out: queue.Queue[tuple[str, object]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for b in batches:
                if not put(("batch", b)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer as is
            put(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None and stop.is_set():
                close()

    reader = threading.Thread(target=pump, name="copy-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = out.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


@task(**RETRYABLE)
def measure_collection(config_path: str, source: str, target: str, collection: str,
                       ranges: Sequence[KeyRange], excluded: Sequence[str] = (),
                       source_digests: SourceDigests | None = None) -> CollectionEvidence:
    """Counts, schemas and per-range digests of one collection on both sides (without the `excluded` fields).

    `source_digests`: the source side already digested over the same ranges by the chunks that copied the frozen
    source (`copy_chunk` with `digest`); used when made the same way, else the source is read here."""
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        return measure(config, src, dst, collection, ranges, excluded, source_digests)


# -- users and files: what a provider cannot keep (adapters.userfiles) ------------------------------------------------
def field_limits(src: Adapter, dst: Adapter, name: str, exists: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields the digests leave out (the target drops them or never gives them back) and the report's notes saying
    exactly what was dropped. Adapters with users and files, or with policies to warn about, declare these."""
    notes: list[str] = []
    target_limits, source_limits = dst.field_limits(name), src.field_limits(name)
    if target_limits.dropped:
        notes.append(f"{name}: dropped by {dst.name} (cannot keep them): " + "; ".join(
            f"{f} — {why}" for f, why in sorted(target_limits.dropped.items())))
    if target_limits.unverifiable:
        notes.append(f"{name}: written to {dst.name} but not verified (never read back): " + "; ".join(
            f"{f} — {why}" for f, why in sorted(target_limits.unverifiable.items())))
    if source_limits.not_carried:
        notes.append(f"{name}: not carried from {src.name}: {', '.join(source_limits.not_carried)}")
    if hasattr(dst, "migration_notes"):
        notes += dst.migration_notes([name], as_target=True, exists=exists, source=src)
    return target_limits.excluded(), tuple(notes)


@task(cache_policy=NO_CACHE)
def run_expectations(evidence: Sequence[CollectionEvidence]) -> ValidationResult:
    return validate(evidence)


@task(**RETRYABLE)
def switch_pointer(config_path: str, expected_epoch: int, target: str, reason: str) -> tuple[int, str]:
    config = load_config(config_path)
    with control_store(config) as control:
        pointer = control.switch(expected_epoch=expected_epoch, provider=target, reason=reason)
        return pointer.epoch, pointer.provider


