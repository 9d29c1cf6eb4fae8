"""Sync through the primary's change capture (the default `sync.method: capture`): deletes replicated, no updated_at.

One pass, per collection: start the capture on the primary (idempotent; the same trigger log blue_green uses) →
copy the whole collection, key range by key range (`replace_range`, so stale or extra rows go too), to each standby
that is not yet `live` (new, or made stale) → read the captured changes, apply them by key to every live standby
(the primary's current record, or a delete where it has none) and acknowledge them. The capture is started before
the copy, so whatever the app writes during it is applied afterwards; applying by key is idempotent, so a change
seen twice is harmless.

The change log has one reader per table, so a pass acknowledges a change only after every live standby has it:
a standby the pass was not asked to sync, or one where a change failed, is marked stale and copied in full next
time. While another run still needs the log (a blue-green or gradual migration from the primary that has not
finished, or a blue-green run's rollback window), sync reads it without acknowledging it; such a migration makes the
primary's standbys stale when it starts, since it consumes the log. A capture found stopped (release, a migration's
end) makes every standby of it stale. What each pass did is kept in the control store (shiftover/control/syncstate.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from shiftover.adapters.base import Adapter, Key, KeyRange, ranges_from_boundaries
from shiftover.adapters.config import Config
from shiftover.adapters.errors import BackendError, StandbyNotInSync
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore, now
from shiftover.control.syncstate import SyncStates
from shiftover.tasks.capture import current_records
from shiftover.tasks.sync_result import SyncResult

_BATCH = 2000
_PASS_BUDGET_S = 60.0


def capture_owner(control: ControlStore, provider: str) -> str | None:
    """The run that still needs `provider`'s change log, if any: a blue-green or gradual migration from it that has
    not finished (it resumes from the log), or a blue-green run whose rollback reads it (its old primary is still
    fenced by that run). Sync then reads the log without consuming it."""
    rollback_checked = False
    for run in control.runs(limit=200):
        if run.strategy in ("blue_green", "gradual") and run.source == provider and run.status in ("running", "failed"):
            return run.run_id
        if not rollback_checked and run.strategy == "blue_green" and run.target == provider \
                and run.status == "succeeded":
            rollback_checked = True
            if any(f.run_id == run.run_id for f in control.freezes(run.source)):
                return run.run_id
    return None


def require_capture(src: Adapter, source: str) -> None:
    if src.capabilities.capture is None:
        raise StandbyNotInSync(
            f"{source!r} ({src.kind}) has no change capture, so a sync cannot see deleted records and its standbys "
            "would keep them", provider=source,
            hint="set sync.method: updated_at in backends.yaml to sync inserts and updates only (deletes are then "
                 "NOT replicated), or keep the standby current by migrating to it")


def full_copy(src: Adapter, dst: Adapter, name: str, *, chunk_rows: int, batch: int = _BATCH) -> int:
    """Make `dst`'s collection equal to `src`'s, key range by key range; returns the records written."""
    key = src.key_of(name)
    rows = 0
    for rng in ranges_from_boundaries(src.key_boundaries(name, chunk_rows)):
        lo: Key | None = rng.lo
        pages = 0
        for page in src.scan_range(name, rng, batch=batch):
            hi = tuple(page[-1][k] for k in key) if len(page) == batch else rng.hi
            dst.replace_range(name, KeyRange(lo, hi), page)
            rows, pages, lo = rows + len(page), pages + 1, hi
        if pages == 0 or lo != rng.hi:  # what the target holds past the last record of the range goes
            dst.replace_range(name, KeyRange(lo, rng.hi), [])
    return rows


def sync_by_capture(config: Config, control: ControlStore, source: str, targets: Sequence[str],
                    collections: Sequence[str] | None = None, *, check: Callable[[], None] | None = None,
                    budget_s: float = _PASS_BUDGET_S) -> list[SyncResult]:
    """One pass from `source` to every standby in `targets`; returns a SyncResult per target."""
    started_at, clock = now(), time.perf_counter()
    states = SyncStates(control)
    results = {t: SyncResult(source, t, method="capture") for t in targets}
    keep_log = capture_owner(control, source)
    with ExitStack() as stack:
        src = stack.enter_context(open_adapter(config, source))
        require_capture(src, source)
        names = list(collections) if collections else src.collections()
        dsts = {t: stack.enter_context(open_adapter(config, t)) for t in targets}
        existing = {t: set(d.collections()) for t, d in dsts.items()}
        captured = set(src.capturing())
        for name in names:
            if check is not None:
                check()
            known = [s for s in states.get(source=source) if s.collection == name]
            if name not in captured and any(s.state == "live" for s in known):
                states.invalidate(source=source, collections=[name],
                                  why="the primary's change capture was stopped since the last sync")
            if not _capturing(src, name, source, targets, states, results):
                continue
            by_target = {s.target: s for s in states.get(source=source) if s.collection == name}
            for t in targets:
                if by_target.get(t) is None or by_target[t].state != "live":  # copied whole; capture already runs
                    _copy_whole(src, dsts[t], name, name in existing[t], states, (source, t), config.sync.chunk_rows,
                                results[t])
            live = list(targets)
            drained, applied = _drain(src, dsts, name, live, states, source, results, ack=keep_log is None,
                                      deadline=time.monotonic() + budget_s, check=check)
            if keep_log is None and applied:  # acknowledged: a live standby this pass did not write missed them
                others = [s.target for s in by_target.values() if s.target not in targets and s.state == "live"]
                for other in others:
                    states.invalidate(source=source, target=other, collections=[name],
                                      why=f"changes were acknowledged by a sync that did not include {other!r}")
            pending = 0 if drained and keep_log else src.capture_pending(name)
            for t in live:
                states.record_pass(source, t, name, method="capture", completed_at=started_at if drained else None,
                                   pending=pending, rows=applied)
                if drained:
                    control.set_watermark(source, t, name, watermark=None, synced_at=started_at, rows=applied)
                results[t].collections[name] = results[t].copied.get(name, 0) + applied
    for t, r in results.items():
        r.lag_s = control.lag_s(source, t)
        r.seconds = time.perf_counter() - clock
        if keep_log:
            r.notes.append(f"run {keep_log} still needs the change log (a live migration or a rollback window): it "
                           "was read, not consumed")
    return list(results.values())


def _capturing(src: Adapter, name: str, source: str, targets: Sequence[str], states: SyncStates,
               results: dict[str, SyncResult]) -> bool:
    """Capture on for the collection; False (each standby told why, and to re-copy it later) when it cannot be."""
    try:
        if not src.key_of(name):
            raise StandbyNotInSync(f"{name!r} has no primary key, so its changes cannot be matched to "
                                   "records", provider=source, hint="add a primary key to sync it")
        src.capture_start([name])
        return True
    except BackendError as exc:
        for t in targets:
            states.copying(source, t, name, "capture")
            states.invalidate(source=source, target=t, collections=[name], why=f"cannot be captured: {exc}")
            results[t].skipped[name] = str(exc)
        return False


def _copy_whole(src: Adapter, dst: Adapter, name: str, exists: bool, states: SyncStates, pair: tuple[str, str],
                chunk_rows: int, result: SyncResult) -> None:
    """Copy the whole collection into a standby that is not live, then mark it live."""
    if not exists:
        dst.create_collection(src.schema(name))
        result.created.append(name)
    source, target = pair
    states.copying(source, target, name, "capture")
    copied = full_copy(src, dst, name, chunk_rows=chunk_rows)
    states.live(source, target, name, method="capture", copied_at=now(), rows=copied)
    result.copied[name] = copied
    result.rows += copied


def _drain(src: Adapter, dsts: dict[str, Adapter], name: str, live: list[str], states: SyncStates, source: str,
           results: dict, *, ack: bool, deadline: float,
           check: Callable[[], None] | None) -> tuple[bool, int]:
    """Apply captured changes to every live standby; returns (every change was read, changes applied)."""
    applied, after = 0, 0
    while True:
        if check is not None:
            check()
        changes = src.capture_read(name, after, _BATCH)
        if not changes:
            return True, applied
        keys = list(dict.fromkeys(c.key for c in changes))
        records = current_records(src, name, keys)
        gone = [k for k in keys if k not in records]
        for t in list(live):
            try:
                dsts[t].upsert(name, list(records.values()))
                if gone:
                    dsts[t].delete(name, gone)
            except BackendError as exc:
                live.remove(t)
                states.invalidate(source=source, target=t, collections=[name],
                                  why=f"a change could not be applied: {exc}")
                results[t].skipped[name] = str(exc)
                continue
            results[t].deleted += len(gone)
            results[t].rows += len(records) + len(gone)
        if ack:
            src.capture_ack(name, [c.seq for c in changes])
        else:
            after = max(c.seq for c in changes)
        applied += len(changes)
        if time.monotonic() > deadline:
            return False, applied
