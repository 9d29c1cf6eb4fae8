"""Replication from the active provider to its standbys, any engine to any engine.

Two methods (`sync.method` in backends.yaml):
- capture (default): the primary's change capture, deletes included, no updated_at column needed: see
  tasks/sync_capture.py. A standby is first copied in full, key range by key range, so it starts equal.
- updated_at: poll `changes(since)`. Per (source, target, collection) the control store keeps a watermark (the newest
  change copied) and `synced_at` (the time the pass started: every change committed before it, give or take
  `overlap_s`, is on the target). A pass reads from `watermark - overlap_s`, so a transaction that committed late
  with an older timestamp is still picked up; upserts are idempotent by key, so the overlap costs a few rewritten
  records and nothing else. Deletes are not seen by an updated_at column and are NOT replicated.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import cast

from prefect import task

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, Record
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore, now
from shiftover.control.syncstate import SyncStates
from shiftover.tasks.migration import control_store
from shiftover.tasks.retry import RETRYABLE
from shiftover.tasks.sync_capture import require_capture, sync_by_capture
from shiftover.tasks.sync_result import SyncResult

DEFAULT_OVERLAP_S = 2.0
_BATCH = 2000
_NO_CURSOR_LIMIT = 10_000_000


def change_time(adapter: Adapter, record: Record) -> dt.datetime | None:
    column = getattr(adapter.options, "updated_at_column", None)
    value = record.get(column) if column else None
    return canonical.utc(value) if isinstance(value, dt.datetime) else None


def copy_changes(src: Adapter, dst: Adapter, name: str, since: dt.datetime | None) -> tuple[int, dt.datetime | None]:
    """Copy every change after `since`; returns (records written, newest change time seen).

    A full page ends part-way through its last timestamp, so its tail (the records at that timestamp) is left for
    the next page, which starts after the timestamp before it: each record is written once."""
    rows, newest, cursor, limit = 0, None, since, _BATCH
    while True:
        batch = src.changes(name, since=cursor, limit=limit)
        if not batch:
            return rows, newest
        last = change_time(src, batch[-1])
        if last is None:  # the engine reports no change time: it returns its whole feed in one call
            if len(batch) >= limit and limit < _NO_CURSOR_LIMIT:
                limit = _NO_CURSOR_LIMIT
                continue
            dst.upsert(name, batch)
            return rows + len(batch), newest
        full = len(batch) >= limit
        # a feed with change times has one on every record it returns
        page = [r for r in batch if cast(dt.datetime, change_time(src, r)) < last] if full else batch
        if not page:  # a full page of one timestamp: widen the page rather than skip part of it
            limit *= 2
            continue
        dst.upsert(name, page)
        rows += len(page)
        seen = change_time(src, page[-1])
        newest = seen if newest is None or (seen is not None and seen > newest) else newest
        if not full:
            return rows, newest
        cursor, limit = seen, _BATCH


def sync_pair(config: Config, control: ControlStore, source: str, target: str,
              collections: Sequence[str] | None = None, *, overlap_s: float = DEFAULT_OVERLAP_S) -> SyncResult:
    """One pass from `source` to `target` by the configured method."""
    if config.sync.method == "capture":
        return sync_by_capture(config, control, source, [target], collections)[0]
    return sync_updated_at(config, control, source, target, collections, overlap_s=overlap_s)


def sync_updated_at(config: Config, control: ControlStore, source: str, target: str,
                    collections: Sequence[str] | None = None, *, overlap_s: float = DEFAULT_OVERLAP_S) -> SyncResult:
    started_at, clock = now(), time.perf_counter()
    result = SyncResult(source, target)
    states = SyncStates(control)
    marks = {m.collection: m for m in control.watermarks(source=source, target=target)}
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        names = list(collections) if collections else src.collections()
        existing = set(dst.collections())
        for name in names:
            if name not in existing:
                dst.create_collection(src.schema(name))
                result.created.append(name)
            mark = marks.get(name)
            since = mark.watermark - dt.timedelta(seconds=overlap_s) if mark and mark.watermark else None
            rows, newest = copy_changes(src, dst, name, since)
            if mark and mark.watermark and (newest is None or newest < mark.watermark):
                newest = mark.watermark
            control.set_watermark(source, target, name, watermark=newest, synced_at=started_at, rows=rows)
            states.record_pass(source, target, name, method="updated_at", completed_at=started_at, pending=0,
                               rows=rows)
            result.collections[name] = rows
            result.rows += rows
    result.lag_s = control.lag_s(source, target)
    result.seconds = time.perf_counter() - clock
    return result


def records_at_risk(config: Config, control: ControlStore, source: str, target: str) -> int:
    """Records changed on `source` since the last sync to `target` that `target` does not hold as they are (with
    capture: the changes still waiting in `source`'s capture)."""
    if config.sync.method == "capture":
        with open_adapter(config, source) as src:
            require_capture(src, source)
            captured = set(src.capturing())
            return sum(src.capture_pending(n) for n in src.collections() if n in captured)
    marks = {m.collection: m for m in control.watermarks(source=source, target=target)}
    missing = 0
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        present = set(dst.collections())
        for name in src.collections():
            mark = marks.get(name)
            since = mark.watermark - dt.timedelta(seconds=DEFAULT_OVERLAP_S) if mark and mark.watermark else None
            key = src.key_of(name)
            for record in src.changes(name, since=since, limit=_NO_CURSOR_LIMIT):
                held = dst.get(name, tuple(record[k] for k in key)) if name in present else None
                if held is None or canonical.record_hash(held) != canonical.record_hash(record):
                    missing += 1
    return missing


def standbys(config: Config, control: ControlStore, active: str) -> list[str]:
    """Providers a sync keeps current: every primary or standby but the active one and fenced old primaries."""
    fenced = {f.provider for f in control.fences()}
    return [n for n, p in config.providers.items() if p.role != "none" and n != active and n not in fenced]


def live_standbys(config: Config, control: ControlStore, source: str) -> list[str]:
    """Standbys with a live capture sync from `source`: a pass that acknowledges changes must write them all."""
    fenced = {f.provider for f in control.fences()}
    return sorted({s.target for s in SyncStates(control).get(source=source) if s.state == "live"
                   and s.target in config.providers and s.target not in fenced and s.target != source})


def lease_check(control: ControlStore, providers: Sequence[str], token: str | None):  # type: ignore[no-untyped-def]
    """A callable that raises LeaseHeld once the run holding `token` lost one of its leases (None: no check)."""
    if token is None:
        return None
    from shiftover.adapters.errors import LeaseHeld
    from shiftover.control.leases import LeaseTable

    table = LeaseTable(control)

    def check() -> None:
        lost = [p for p in providers if (h := table.get(p)) is None or h.token != token]
        if lost:
            raise LeaseHeld(f"this sync lost its lease on {', '.join(lost)} (a failover preempts a sync)",
                            provider=lost[0], hint="the sync stops here; the next one resumes")
    return check


@task(**RETRYABLE, task_run_name="sync-{source}-to-{target}")
def sync_standby(config_path: str, source: str, target: str, collections: list[str] | None = None,
                 overlap_s: float = DEFAULT_OVERLAP_S) -> SyncResult:
    config = load_config(config_path)
    with control_store(config) as control:
        return sync_pair(config, control, source, target, collections, overlap_s=overlap_s)


@task(**RETRYABLE, task_run_name="sync-{source}")
def sync_standbys(config_path: str, source: str, targets: list[str], collections: list[str] | None = None,
                  lease_token: str | None = None) -> list[SyncResult]:
    """One capture pass from `source` to every standby in `targets` (one reader of the change log)."""
    config = load_config(config_path)
    with control_store(config) as control:
        return sync_by_capture(config, control, source, targets, collections,
                               check=lease_check(control, [source, *targets], lease_token))
