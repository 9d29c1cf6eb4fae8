"""Tasks for live migrations: plan with capture, start/stop capture, catch up, digest key ranges, fence, cut over.

Catch-up applies captured changes by key: for each changed key it reads the source's current record and upserts it
on the target, or deletes the key there when the source no longer has it, then acknowledges the changes. That makes
every pass idempotent and independent of order: a change applied twice (a retried task, a re-run after kill -9)
leaves the same target. Nothing here holds state between calls; the change log lives in the source engine and the
checkpoints in the control store, so any process can pick a run up where another one died.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from shiftover.adapters.base import Adapter, Filter, Key, KeyRange, RangeDigest, Record, ranges_from_boundaries
from shiftover.adapters.config import load_config
from shiftover.adapters.registry import open_adapter
from shiftover.tasks.digests import copy_path, pushdown_function
from shiftover.tasks.migration import CollectionPlan, control_store, pause_point
from shiftover.tasks.retry import RETRYABLE

if TYPE_CHECKING:
    from shiftover.control.store import ControlStore
    from shiftover.expectations.suites import CollectionEvidence


@dataclass(frozen=True)
class LivePlan:
    plans: list[CollectionPlan]
    keyless: list[str]  # collections without a primary key: they cannot be kept in sync by key
    capture: str | None  # the source's capture mechanism, None if it has none
    target_capture: str | None


@dataclass(frozen=True)
class CatchUp:
    collection: str
    applied: int  # changes acknowledged
    upserted: int
    deleted: int
    pending: int  # changes still waiting afterwards
    last_seq: int
    seconds: float
    keys: tuple[Key, ...] = field(default=())  # the keys touched, when asked for


@task(**RETRYABLE)
def plan_live(config_path: str, source: str, target: str, collections: Sequence[str] | None,
              chunk_rows: int) -> LivePlan:
    """Like plan_collections, but a table without a primary key is named instead of failing the whole plan."""
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        names = list(collections) if collections else src.collections()
        existing = set(dst.collections())
        plans, keyless = [], []
        for name in names:
            schema = src.schema(name)
            if not schema.key:
                keyless.append(name)
                continue
            ranges = ranges_from_boundaries(src.key_boundaries(name, chunk_rows))
            plans.append(CollectionPlan(name, schema, src.count(name), tuple(ranges), copy_path(src, dst),
                                        name in existing))
        return LivePlan(plans, keyless, src.capabilities.capture, dst.capabilities.capture)


def keyless_advice(names: Sequence[str]) -> str:
    return (f"{', '.join(repr(n) for n in names)} {'has' if len(names) == 1 else 'have'} no primary key, so "
            "changes made during the copy cannot be matched to records: add a primary key (e.g. ALTER TABLE ... ADD "
            "PRIMARY KEY (...)), or leave it out with --collections and move it while the app is stopped")


@task(**RETRYABLE)
def start_capture(config_path: str, provider: str, names: Sequence[str]) -> list[str]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        a.capture_start(list(names))
        return a.capturing()


@task(**RETRYABLE)
def stop_capture(config_path: str, provider: str, names: Sequence[str]) -> list[str]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        a.capture_stop(list(names))
        return a.capturing()


@task(**RETRYABLE)
def capturing(config_path: str, provider: str) -> list[str]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        return a.capturing()


def current_records(src: Adapter, name: str, keys: Sequence[Key]) -> dict[Key, Record]:
    """The source's current record for each key that still exists."""
    cols = src.key_of(name)
    found: dict[Key, Record] = {}
    if len(cols) == 1:
        for start in range(0, len(keys), 500):
            part = [k[0] for k in keys[start:start + 500]]
            for rec in src.find(name, [Filter(cols[0], "in", part)]):
                found[(rec[cols[0]],)] = rec
    else:
        for k in keys:
            current = src.get(name, k)
            if current is not None:
                found[tuple(current[c] for c in cols)] = current
    return found


def apply_changes(src: Adapter, dst: Adapter, name: str, *, max_changes: int | None, batch: int = 1000,
                  bypass_target: bool = False, track: bool = False) -> tuple[int, int, int, int, list[Key]]:
    """Read, apply and acknowledge captured changes; returns (applied, upserted, deleted, last_seq, keys)."""
    applied = upserted = deleted = last_seq = 0
    touched: list[Key] = []
    while max_changes is None or applied < max_changes:
        changes = src.capture_read(name, 0, batch if max_changes is None else min(batch, max_changes - applied))
        if not changes:
            break
        keys = list(dict.fromkeys(c.key for c in changes))
        records = current_records(src, name, keys)
        gone = [k for k in keys if k not in records]
        with dst.bypass_freeze() if bypass_target else nullcontext(dst):
            upserted += dst.upsert(name, list(records.values()))
            if gone:
                dst.delete(name, gone)
        deleted += len(gone)
        src.capture_ack(name, [c.seq for c in changes])
        applied += len(changes)
        last_seq = max(last_seq, max(c.seq for c in changes))
        if track:
            touched.extend(keys)
    return applied, upserted, deleted, last_seq, touched


@task(**RETRYABLE)
def catch_up(config_path: str, run_id: str, source: str, target: str, name: str, *, max_changes: int | None = None,
             bypass_target: bool = False, track: bool = False, phase: str = "catchup", until_below: int | None = None,
             budget_s: float = 20.0) -> CatchUp:
    """Apply up to `max_changes` captured changes of `name` (all of them with None) and checkpoint the watermark.
    With `until_below`, keep draining (within `budget_s`) until fewer changes than that wait: a loop inside one task
    is fast enough to overtake a busy writer, where a task per pass would not be."""
    start = time.perf_counter()
    config = load_config(config_path)
    applied = ups = dels = last_seq = 0
    keys: list[Key] = []
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        while True:
            a, u, d, seq, k = apply_changes(src, dst, name, max_changes=max_changes, bypass_target=bypass_target,
                                            track=track)
            applied, ups, dels, last_seq = applied + a, ups + u, dels + d, max(last_seq, seq)
            keys += k
            pending = src.capture_pending(name)
            if (until_below is None or pending < until_below or a == 0
                    or time.perf_counter() - start > budget_s):
                break
    with control_store(config) as control:
        if applied:
            control.set_checkpoint(run_id, name, watermark=str(last_seq), phase=phase)
    return CatchUp(name, applied, ups, dels, pending, last_seq, time.perf_counter() - start, tuple(keys))


@task(**RETRYABLE)
def pending_changes(config_path: str, provider: str, names: Sequence[str]) -> dict[str, int]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        return {n: a.capture_pending(n) for n in names}


@task(**RETRYABLE)
def digest_boundaries(config_path: str, provider: str, name: str, every: int) -> list[Key]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        return a.key_boundaries(name, every)


def _pushdown_columns(src: Adapter, dst: Adapter, name: str) -> list[str] | None:
    family = src.capabilities.digest_pushdown
    if not family or family != dst.capabilities.digest_pushdown:
        return None
    s, t = src.schema(name), dst.schema(name)
    try:
        same = all(c.native is not None and c.native == t.column(c.name).native for c in s.columns)
    except KeyError:
        return None
    return sorted(s.names) if same and len(s.columns) == len(t.columns) else None


def digest_pair(src: Adapter, dst: Adapter, name: str, ranges: Sequence[KeyRange]
                ) -> tuple[list[RangeDigest], list[RangeDigest], str]:
    columns = _pushdown_columns(src, dst, name)
    found = pushdown_function(src, dst, name, columns) if columns is not None else None
    if found is not None:
        assert columns is not None
        function, label = found
        return (src.pushdown_digests(name, ranges, columns, function),
                dst.pushdown_digests(name, ranges, columns, function), label)
    return src.digests(name, ranges), dst.digests(name, ranges), "canonical records (client)"


@task(**RETRYABLE)
def digest_ranges(config_path: str, source: str, target: str, name: str, ranges: Sequence[KeyRange]
                  ) -> tuple[list[RangeDigest], list[RangeDigest], str]:
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        return digest_pair(src, dst, name, list(ranges))


@dataclass
class DigestBook:
    """Per-range digests of one collection on both sides, kept current by re-digesting only dirty ranges."""

    name: str
    boundaries: list[Key]
    source: dict[int, RangeDigest] = field(default_factory=dict)
    target: dict[int, RangeDigest] = field(default_factory=dict)
    method: str = ""

    @property
    def ranges(self) -> list[KeyRange]:
        return ranges_from_boundaries(self.boundaries)

    def dirty_of(self, keys: Sequence[Key]) -> set[int]:
        return {bisect.bisect_left(self.boundaries, tuple(k)) for k in keys}

    def update(self, idx: Sequence[int], src: Sequence[RangeDigest], dst: Sequence[RangeDigest], method: str) -> None:
        for i, s, t in zip(idx, src, dst, strict=True):
            self.source[i], self.target[i] = s, t
        self.method = method

    def missing(self) -> set[int]:
        return set(range(len(self.boundaries) + 1)) - set(self.source)

    def differing(self) -> list[int]:
        return [i for i in self.source if (self.source[i].count, self.source[i].digest) !=
                (self.target[i].count, self.target[i].digest)]


@dataclass(frozen=True)
class CutoverResult:
    switched: bool
    epoch: int | None
    freeze_ms: float
    final_changes: int
    final_seconds: float
    evidence: list  # list[CollectionEvidence]
    books: list[DigestBook]
    frozen_engine: list[str]
    redigested_ranges: int
    waiting: tuple[str, ...] = ()  # schema objects that wait for a table still to move (gradual's foreign keys)


@task(retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def cutover_window(config_path: str, run_id: str, source: str, target: str, names: Sequence[str],
                   books: list[DigestBook], expected_epoch: int, switch: bool, reason: str,
                   route: bool = False) -> CutoverResult:
    """The whole write-freeze window in one task, so it costs no orchestration round trips: freeze the source in the
    engine → apply the final delta → re-digest the ranges it touched → counts → GX suites → start capturing on the
    target (for rollback) → switch the pointer by compare-and-swap. With `route` (gradual) the collections are routed
    to the target instead and the source keeps them frozen: they live on the target from now on. On a failed suite
    the freeze is lifted and CutoverBlocked raised; nothing moves unless the suites pass."""
    from shiftover.adapters.errors import CutoverBlocked
    from shiftover.expectations.suites import validate
    from shiftover.tasks.schema import finish_in_freeze, with_objects

    config = load_config(config_path)
    with control_store(config) as control, open_adapter(config, source) as src, open_adapter(config, target) as dst:
        current = control.pointer()
        if switch and current is not None and current.provider == target and run_id in current.reason:
            return CutoverResult(True, current.epoch, 0.0, 0, 0.0, [], books, src.frozen(), 0)
        if route and all(control.routes().get(n) == target for n in names):
            return CutoverResult(False, None, 0.0, 0, 0.0, [], books, src.frozen(), 0)
        t0 = time.perf_counter()
        why = f"{'gradual' if route else 'blue-green'} cutover {run_id} to {target}"
        control.set_freeze(source, names, run_id=run_id, reason=why)
        src.freeze(names, reason=why)
        frozen = src.frozen()
        pause_point("frozen")
        try:
            final, redigested, evidence = _final_delta(src, dst, books, control, run_id)
            moved = sorted(set(names) | {n for n, p in control.routes().items() if p == target})
            found, waiting = finish_in_freeze(config_path, run_id, src, dst, names, moved if route else names)
            evidence = with_objects(evidence, found)
            final_s = time.perf_counter() - t0
            result = validate(evidence)
            if not result.success:
                raise CutoverBlocked("the target does not hold the same records: " + "; ".join(result.failures()[:10]),
                                     failures=result.failures(),
                                     hint="the pointer did not move; re-run to resume (differing ranges are re-copied)")
            epoch = None
            if route:
                for name in names:
                    control.set_route(name, target)
            elif switch:
                if dst.capabilities.capture:
                    dst.capture_start(list(names))
                epoch = control.switch(expected_epoch=expected_epoch, provider=target, reason=reason).epoch
            freeze_ms = (time.perf_counter() - t0) * 1000
        except BaseException:
            current = control.pointer()
            switched = bool(current and current.provider == target and run_id in current.reason) or (
                route and all(control.routes().get(n) == target for n in names))
            if not switched:
                src.unfreeze(names)
                control.clear_freeze(source, names)
            raise
        if not switch and not route:
            src.unfreeze(names)
            control.clear_freeze(source, names)
        return CutoverResult(switch, epoch, freeze_ms, final, final_s, evidence, books, frozen, redigested,
                             tuple(waiting))


def _final_delta(src: Adapter, dst: Adapter, books: list[DigestBook], control: ControlStore,
                 run_id: str) -> tuple[int, int, list[CollectionEvidence]]:
    """Inside the freeze: apply the last captured changes and re-digest the ranges they (or an earlier difference)
    touched; (changes applied, ranges re-digested, the evidence for the suites)."""
    from shiftover.expectations.suites import CollectionEvidence

    final, redigested, evidence = 0, 0, []
    for book in books:
        applied, _, _, last_seq, keys = apply_changes(src, dst, book.name, max_changes=None, track=True)
        final += applied
        if applied:
            control.set_checkpoint(run_id, book.name, watermark=str(last_seq), phase="final-delta")
        dirty = sorted(book.dirty_of(keys) | set(book.differing()) | book.missing())
        ranges = book.ranges
        if dirty:
            s, t, method = digest_pair(src, dst, book.name, [ranges[i] for i in dirty])
            book.update(dirty, s, t, method)
            redigested += len(dirty)
        order = range(len(ranges))
        evidence.append(CollectionEvidence(
            book.name, src.count(book.name), dst.count(book.name), [book.source[i] for i in order],
            [book.target[i] for i in order], src.schema(book.name), dst.schema(book.name), book.method))
    return final, redigested, evidence


@task(**RETRYABLE)
def fence(config_path: str, provider: str, names: Sequence[str], run_id: str, reason: str) -> list[str]:
    """Keep the old primary write-fenced (engine freeze + control flag) until a rollback or a release."""
    config = load_config(config_path)
    with control_store(config) as control, open_adapter(config, provider) as a:
        control.set_freeze(provider, names, run_id=run_id, reason=reason)
        a.freeze(list(names), reason=reason)
        return a.frozen()


@task(**RETRYABLE)
def lift_fence(config_path: str, provider: str, names: Sequence[str]) -> None:
    config = load_config(config_path)
    with control_store(config) as control, open_adapter(config, provider) as a:
        a.unfreeze(list(names))
        control.clear_freeze(provider, list(names))


@task(**RETRYABLE)
def fenced_or_captured(config_path: str, provider: str) -> list[str]:
    config = load_config(config_path)
    with open_adapter(config, provider) as a:
        return sorted(set(a.frozen()) | set(a.capturing()))


@task(**RETRYABLE)
def copy_back(config_path: str, green: str, blue: str, name: str, rng: KeyRange, batch_size: int) -> int:
    """Rollback without a capture on green: make blue's key range equal to green's, through blue's own fence."""
    config = load_config(config_path)
    rows = 0
    with open_adapter(config, green) as g, open_adapter(config, blue) as b:
        key = g.key_of(name)
        lo = rng.lo
        for batch in g.scan_range(name, rng, batch=batch_size):
            hi = tuple(batch[-1][k] for k in key) if len(batch) == batch_size else rng.hi
            with b.bypass_freeze():
                b.replace_range(name, KeyRange(lo, hi), batch)
            rows += len(batch)
            lo = hi
        if rows == 0 or lo != rng.hi:
            with b.bypass_freeze():
                b.replace_range(name, KeyRange(lo, rng.hi), [])
    return rows


def switched_by(control, target: str, run_id: str) -> int | None:  # type: ignore[no-untyped-def]
    """The epoch at which this run moved the pointer to `target`, if it did (found in the pointer's history)."""
    for p in control.history(limit=50):
        if p.provider == target and run_id in p.reason:
            return p.epoch
    return None

