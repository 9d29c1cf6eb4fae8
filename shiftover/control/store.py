"""The control store: state that must survive a crash (SQLite by default, PostgreSQL in production).

- the active-backend pointer `(epoch, provider, since, reason)`, changed only by compare-and-swap on the epoch; the
  epoch is the fencing token, and every switch is kept in `pointer_history`;
- write-freeze flags per provider and collection (`*` = the whole backend);
- migration runs, their key-range chunks (done or not) and per-collection checkpoints (last key, watermark);
- health history: every probe, and the last health state of each provider (for state-change events);
- per-collection routes (consulted by the router before the pointer), fences of old primaries, and sync watermarks
  (source → target per collection) from which a standby's lag is read.

The tables are declared in shiftover/control/tables.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa

from shiftover.adapters.base import KeyRange, ProbeResult
from shiftover.adapters.canonical import key_from_json, key_json
from shiftover.adapters.errors import ConfigInvalid, PointerConflict, ProviderUnavailable, redact, url_secrets
from shiftover.control.tables import (
    checkpoints_t,
    chunks_t,
    fences_t,
    freezes_t,
    health_pending_t,
    health_states_t,
    history_t,
    metadata,
    pointer_t,
    probes_t,
    routes_t,
    runs_t,
    watermarks_t,
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@overload
def _aware(value: dt.datetime) -> dt.datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp read back from the store, in UTC (SQLite returns it naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


@dataclass(frozen=True)
class Pointer:
    epoch: int
    provider: str
    since: dt.datetime
    reason: str


@dataclass(frozen=True)
class Freeze:
    provider: str
    collection: str
    run_id: str | None
    since: dt.datetime
    reason: str


@dataclass(frozen=True)
class Fence:
    provider: str
    epoch: int  # the epoch that replaced this provider
    since: dt.datetime
    engine_fenced: bool
    reason: str


@dataclass(frozen=True)
class Watermark:
    source: str
    target: str
    collection: str
    watermark: dt.datetime | None  # newest change copied
    synced_at: dt.datetime  # every change committed on the source before this was copied
    rows: int


@dataclass(frozen=True)
class Run:
    run_id: str
    kind: str
    source: str | None
    target: str | None
    strategy: str | None
    status: str
    started: dt.datetime
    finished: dt.datetime | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class Chunk:
    collection: str
    idx: int
    range: KeyRange
    rows: int | None
    done: bool


class ControlStore:
    """Open with `ControlStore(url)`; tables are created on first use. Safe to share across threads."""

    def __init__(self, url: str) -> None:
        self._url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        args: dict[str, Any] = ({"connect_args": {"timeout": 30}} if url.startswith("sqlite")
                                else {"pool_pre_ping": True})
        try:
            self.engine = sa.create_engine(url, **args)
        except (sa.exc.ArgumentError, ValueError, ImportError):  # bad form, port, unknown dialect or driver
            raise ConfigInvalid("control.url is not a URL the control store can use",
                                hint="write sqlite:///PATH or postgresql+psycopg://user:password@host:5432/db",
                                provider="control") from None
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn: Any, _r: Any) -> None:
                dbapi_conn.isolation_level = None
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute("PRAGMA busy_timeout=30000")

            @sa.event.listens_for(self.engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        with self._tx() as conn:
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ControlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise ProviderUnavailable(
                f"the control store is unreachable: {redact(str(exc.orig), url_secrets(self._url))}",
                hint="check control.url in backends.yaml", provider="control",
            ) from None
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DatabaseError as exc:  # "file is not a database", a table altered by hand
            raise ProviderUnavailable(
                f"the control store cannot be read: {redact(str(exc.orig).splitlines()[0], url_secrets(self._url))}",
                hint="restore control.url's database from a backup, or point control.url at a new one",
                provider="control",
            ) from None

    # -- pointer -------------------------------------------------------------------------------------------------------
    def pointer(self) -> Pointer | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(pointer_t).where(pointer_t.c.id == 1)).first()
        return Pointer(row.epoch, row.provider, _aware(row.since), row.reason) if row else None

    def ensure_pointer(self, provider: str, reason: str = "initial primary from configuration") -> Pointer:
        current = self.pointer()
        if current is not None:
            return current
        at = now()
        try:
            with self._tx() as conn:
                conn.execute(sa.insert(pointer_t).values(id=1, epoch=1, provider=provider, since=at, reason=reason))
                conn.execute(sa.insert(history_t).values(epoch=1, provider=provider, since=at, reason=reason))
        except sa.exc.IntegrityError:
            pass  # another process created it first
        pointer = self.pointer()
        assert pointer is not None
        return pointer

    def switch(self, *, expected_epoch: int, provider: str, reason: str) -> Pointer:
        """Compare-and-swap: moves the pointer only if its epoch is still `expected_epoch`; the epoch grows by one."""
        at = now()
        with self._tx() as conn:
            done = conn.execute(
                sa.update(pointer_t)
                .where(pointer_t.c.id == 1, pointer_t.c.epoch == expected_epoch)
                .values(epoch=expected_epoch + 1, provider=provider, since=at, reason=reason)
            ).rowcount
            if done == 1:
                conn.execute(sa.insert(history_t).values(epoch=expected_epoch + 1, provider=provider, since=at,
                                                         reason=reason))
        if done != 1:
            current = self.pointer()
            raise PointerConflict(
                f"the pointer moved while this switch was prepared (expected epoch {expected_epoch}, "
                f"now {current.epoch if current else 'none'} on {current.provider if current else 'none'})",
                hint="another switch won; re-read the status and decide again",
            )
        return Pointer(expected_epoch + 1, provider, at, reason)

    def history(self, limit: int = 20) -> list[Pointer]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(history_t).order_by(history_t.c.epoch.desc()).limit(limit)).all()
        return [Pointer(r.epoch, r.provider, _aware(r.since), r.reason) for r in rows]

    # -- freezes -------------------------------------------------------------------------------------------------------
    def set_freeze(self, provider: str, collections: Sequence[str], *, run_id: str | None, reason: str) -> None:
        at = now()
        with self._tx() as conn:
            for c in collections:
                conn.execute(sa.delete(freezes_t).where(freezes_t.c.provider == provider, freezes_t.c.collection == c))
                conn.execute(sa.insert(freezes_t).values(provider=provider, collection=c, run_id=run_id, since=at,
                                                         reason=reason))

    def clear_freeze(self, provider: str, collections: Sequence[str] | None = None, *,
                     only_run: str | None = None) -> None:
        """Lift freeze flags; with `only_run`, only those that run owns (a freeze is lifted by the run that set it)."""
        with self._tx() as conn:
            stmt = sa.delete(freezes_t).where(freezes_t.c.provider == provider)
            if collections is not None:
                stmt = stmt.where(freezes_t.c.collection.in_(list(collections)))
            if only_run is not None:
                stmt = stmt.where(freezes_t.c.run_id == only_run)
            conn.execute(stmt)

    def freezes(self, provider: str | None = None) -> list[Freeze]:
        stmt = sa.select(freezes_t).order_by(freezes_t.c.provider, freezes_t.c.collection)
        if provider is not None:
            stmt = stmt.where(freezes_t.c.provider == provider)
        with self._tx() as conn:
            return [Freeze(r.provider, r.collection, r.run_id, _aware(r.since), r.reason) for r in conn.execute(stmt)]

    # -- runs and checkpoints ------------------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, kind: str, source: str | None, target: str | None, strategy: str | None,
                  fingerprint: str) -> None:
        with self._tx() as conn:
            exists = conn.execute(sa.select(runs_t.c.run_id).where(runs_t.c.run_id == run_id)).first()
            if exists:
                conn.execute(sa.update(runs_t).where(runs_t.c.run_id == run_id).values(status="running", finished=None))
            else:
                conn.execute(sa.insert(runs_t).values(
                    run_id=run_id, kind=kind, source=source, target=target, strategy=strategy,
                    fingerprint=fingerprint, status="running", started=now()))

    def open_run(self, fingerprint: str) -> str | None:
        """The newest unfinished run with these parameters: a re-run resumes it."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(runs_t.c.run_id)
                .where(runs_t.c.fingerprint == fingerprint, runs_t.c.status.in_(["running", "failed"]))
                .order_by(runs_t.c.started.desc()).limit(1)
            ).first()
        return row.run_id if row else None

    def finish_run(self, run_id: str, *, status: str, summary: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(runs_t).where(runs_t.c.run_id == run_id).values(
                status=status, finished=now(), summary=json.dumps(summary, default=str)))

    def set_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(runs_t).where(runs_t.c.run_id == run_id).values(
                summary=json.dumps(summary, default=str)))

    def runs(self, limit: int = 10) -> list[Run]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(runs_t).order_by(runs_t.c.started.desc()).limit(limit)).all()
        return [Run(r.run_id, r.kind, r.source, r.target, r.strategy, r.status, _aware(r.started), _aware(r.finished),
                    json.loads(r.summary) if r.summary else {}) for r in rows]

    def running_migrations(self) -> dict[str, str]:
        """{target provider: run_id} of every migration still running (a gradual one between its runs, too)."""
        stmt = (sa.select(runs_t.c.target, runs_t.c.run_id)
                .where(runs_t.c.kind == "migrate", runs_t.c.status == "running", runs_t.c.target.is_not(None))
                .order_by(runs_t.c.started))
        with self._tx() as conn:
            return {r.target: r.run_id for r in conn.execute(stmt)}

    def run(self, run_id: str) -> Run | None:
        return next((r for r in self.runs(limit=1000) if r.run_id == run_id), None)

    def save_chunks(self, run_id: str, collection: str, ranges: Sequence[KeyRange]) -> list[Chunk]:
        """Record the chunk plan once; a resumed run gets the plan it started with."""
        existing = self.chunks(run_id, collection)
        if existing:
            return existing
        with self._tx() as conn:
            conn.execute(sa.insert(chunks_t), [
                {"run_id": run_id, "collection": collection, "idx": i, "lo": key_json(r.lo), "hi": key_json(r.hi),
                 "rows": None, "done": False} for i, r in enumerate(ranges)])
        return self.chunks(run_id, collection)

    def chunk_done(self, run_id: str, collection: str, idx: int, rows: int) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(chunks_t).where(
                chunks_t.c.run_id == run_id, chunks_t.c.collection == collection, chunks_t.c.idx == idx
            ).values(done=True, rows=rows))

    def chunk_undone(self, run_id: str, collection: str, idx: int) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(chunks_t).where(
                chunks_t.c.run_id == run_id, chunks_t.c.collection == collection, chunks_t.c.idx == idx
            ).values(done=False, rows=None))

    def chunks(self, run_id: str, collection: str | None = None) -> list[Chunk]:
        stmt = sa.select(chunks_t).where(chunks_t.c.run_id == run_id).order_by(chunks_t.c.collection, chunks_t.c.idx)
        if collection is not None:
            stmt = stmt.where(chunks_t.c.collection == collection)
        with self._tx() as conn:
            return [Chunk(r.collection, r.idx, KeyRange(key_from_json(r.lo), key_from_json(r.hi)), r.rows, r.done)
                    for r in conn.execute(stmt)]

    def rows_done(self, run_id: str, *, in_flight: bool = False) -> int:
        """Rows of the chunks done; with `in_flight`, also the rows chunks still copying reported so far."""
        where = [chunks_t.c.run_id == run_id] + ([] if in_flight else [chunks_t.c.done.is_(True)])
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(chunks_t.c.rows), 0))
                                    .where(*where)).scalar_one())

    def chunk_progress(self, run_id: str, collection: str, idx: int, rows: int) -> None:
        """Rows a chunk still copying has written so far (a done chunk keeps its count)."""
        with self._tx() as conn:
            conn.execute(sa.update(chunks_t).where(
                chunks_t.c.run_id == run_id, chunks_t.c.collection == collection, chunks_t.c.idx == idx,
                chunks_t.c.done.is_(False)).values(rows=rows))

    def set_checkpoint(self, run_id: str, collection: str, *, last_key: str | None = None,
                       watermark: str | None = None, rows_copied: int | None = None, phase: str | None = None) -> None:
        values = {k: v for k, v in {"last_key": last_key, "watermark": watermark, "rows_copied": rows_copied,
                                    "phase": phase}.items() if v is not None}
        with self._tx() as conn:
            done = conn.execute(sa.update(checkpoints_t).where(
                checkpoints_t.c.run_id == run_id, checkpoints_t.c.collection == collection).values(**values)).rowcount
            if not done:
                conn.execute(sa.insert(checkpoints_t).values(run_id=run_id, collection=collection,
                                                             **{"rows_copied": 0, **values}))

    def checkpoints(self, run_id: str) -> dict[str, dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(checkpoints_t).where(checkpoints_t.c.run_id == run_id)).all()
        return {r.collection: {"last_key": r.last_key, "watermark": r.watermark, "rows_copied": r.rows_copied,
                               "phase": r.phase} for r in rows}

    # -- health history ------------------------------------------------------------------------------------------------
    def record_probe(self, result: ProbeResult, *, kept: dt.timedelta | None = None) -> None:
        """Store a probe; with `kept` (health.history_days), the provider's probes older than that go in the same
        transaction, so the history stays bounded however long `shiftover serve` runs."""
        with self._tx() as conn:
            conn.execute(sa.insert(probes_t).values(provider=result.provider, at=result.at, ok=result.ok,
                                                    latency_ms=result.latency_ms, error=result.error))
            if kept is not None:
                conn.execute(sa.delete(probes_t).where(probes_t.c.provider == result.provider,
                                                       probes_t.c.at < result.at - kept))

    def probes(self, provider: str, *, since: dt.datetime | None = None, limit: int = 1000) -> list[ProbeResult]:
        stmt = sa.select(probes_t).where(probes_t.c.provider == provider).order_by(probes_t.c.at.desc()).limit(limit)
        if since is not None:
            stmt = stmt.where(probes_t.c.at >= since)
        with self._tx() as conn:
            return [ProbeResult(r.provider, r.ok, r.latency_ms, r.error, (), _aware(r.at)) for r in conn.execute(stmt)]

    def health_state(self, provider: str) -> str | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(health_states_t.c.state).where(health_states_t.c.provider == provider)).first()
        return row.state if row else None

    def settle_health_state(self, provider: str, observed: str, debounce: int) -> tuple[str, str | None, int]:
        """Debounce: the stored state becomes `observed` only once `debounce` consecutive observations agree (the
        first observation of a provider is taken at once). Returns (state now, state before, observations of a
        different state still pending)."""
        with self._tx() as conn:
            row = conn.execute(sa.select(health_states_t.c.state).where(health_states_t.c.provider == provider)).first()
            pending = conn.execute(sa.select(health_pending_t.c.state, health_pending_t.c.count)
                                   .where(health_pending_t.c.provider == provider)).first()
            conn.execute(sa.delete(health_pending_t).where(health_pending_t.c.provider == provider))
            if row is None:
                conn.execute(sa.insert(health_states_t).values(provider=provider, state=observed, since=now()))
                return observed, None, 0
            if row.state == observed:
                return observed, observed, 0
            waiting, waited = pending.tuple() if pending is not None else (None, 0)
            count = waited + 1 if waiting == observed else 1
            if count >= debounce:
                conn.execute(sa.update(health_states_t).where(health_states_t.c.provider == provider)
                             .values(state=observed, since=now()))
                return observed, row.state, 0
            conn.execute(sa.insert(health_pending_t).values(provider=provider, state=observed, count=count))
            return row.state, row.state, count

    # -- per-collection routes -----------------------------------------------------------------------------------------
    def set_route(self, collection: str, provider: str) -> None:
        """Send the router's calls for `collection` to `provider`, whatever the pointer says (gradual migration)."""
        with self._tx() as conn:
            conn.execute(sa.delete(routes_t).where(routes_t.c.collection == collection))
            conn.execute(sa.insert(routes_t).values(collection=collection, provider=provider, since=now()))

    def clear_route(self, collection: str | None = None) -> None:
        with self._tx() as conn:
            stmt = sa.delete(routes_t)
            if collection is not None:
                stmt = stmt.where(routes_t.c.collection == collection)
            conn.execute(stmt)

    def routes(self) -> dict[str, str]:
        with self._tx() as conn:
            return {r.collection: r.provider for r in conn.execute(sa.select(routes_t))}

    # -- fences of replaced primaries ----------------------------------------------------------------------------------
    def add_fence(self, provider: str, *, epoch: int, reason: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.delete(fences_t).where(fences_t.c.provider == provider))
            conn.execute(sa.insert(fences_t).values(provider=provider, epoch=epoch, since=now(), engine_fenced=False,
                                                    reason=reason))

    def mark_engine_fenced(self, provider: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(fences_t).where(fences_t.c.provider == provider).values(engine_fenced=True))

    def clear_fence(self, provider: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.delete(fences_t).where(fences_t.c.provider == provider))

    def fences(self) -> list[Fence]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(fences_t).order_by(fences_t.c.provider)).all()
        return [Fence(r.provider, r.epoch, _aware(r.since), bool(r.engine_fenced), r.reason) for r in rows]

    # -- sync watermarks -----------------------------------------------------------------------------------------------
    def set_watermark(self, source: str, target: str, collection: str, *, watermark: dt.datetime | None,
                      synced_at: dt.datetime, rows: int) -> None:
        c = watermarks_t.c
        key = (c.source == source, c.target == target, c.collection == collection)
        with self._tx() as conn:
            row = conn.execute(sa.select(watermarks_t.c.rows).where(*key)).first()
            if row is None:
                conn.execute(sa.insert(watermarks_t).values(source=source, target=target, collection=collection,
                                                            watermark=watermark, synced_at=synced_at, rows=rows))
            else:
                conn.execute(sa.update(watermarks_t).where(*key).values(watermark=watermark, synced_at=synced_at,
                                                                         rows=row.rows + rows))

    def watermarks(self, *, source: str | None = None, target: str | None = None) -> list[Watermark]:
        stmt = sa.select(watermarks_t).order_by(watermarks_t.c.source, watermarks_t.c.target, watermarks_t.c.collection)
        if source is not None:
            stmt = stmt.where(watermarks_t.c.source == source)
        if target is not None:
            stmt = stmt.where(watermarks_t.c.target == target)
        with self._tx() as conn:
            return [Watermark(r.source, r.target, r.collection, _aware(r.watermark), _aware(r.synced_at), r.rows)
                    for r in conn.execute(stmt)]

    def lag_s(self, source: str, target: str) -> float | None:
        """Seconds since `target` last held every change of `source` (its oldest collection); None if never synced."""
        marks = self.watermarks(source=source, target=target)
        if not marks:
            return None
        return (now() - min(m.synced_at for m in marks)).total_seconds()
