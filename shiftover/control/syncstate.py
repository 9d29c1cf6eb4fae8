"""Per standby and collection: how far a sync has brought it (the control store's `sync_states` table).

state: `copying` while the initial full copy runs, `live` once the standby held every record and the primary's
change capture covers it, `stale` when it can no longer be trusted (the capture was stopped or consumed by another
run, a change could not be applied, a migration wrote into the standby); a stale standby is copied in full again
by the next sync. `completed_at` is the start of the last pass that drained every captured change, `pending` the
changes still waiting after it (the lag): None means never. Failover reads `readiness()` before it switches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from shiftover.control.store import ControlStore

_md = sa.MetaData()
_ts = sa.DateTime(timezone=True)

sync_states_t = sa.Table(
    "sync_states", _md,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("target", sa.String(200), primary_key=True),
    sa.Column("collection", sa.String(300), primary_key=True),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("copied_at", _ts),
    sa.Column("completed_at", _ts),
    sa.Column("pending", sa.BigInteger),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


@dataclass(frozen=True)
class SyncState:
    source: str
    target: str
    collection: str
    method: str  # capture or updated_at
    state: str  # copying, live, stale
    note: str | None
    copied_at: dt.datetime | None
    completed_at: dt.datetime | None
    pending: int | None
    rows: int

    def problem(self) -> str | None:
        if self.state != "live":
            return f"{self.collection}: {self.state}" + (f" ({self.note})" if self.note else "")
        if self.completed_at is None:
            return f"{self.collection}: no sync pass has completed"
        if self.pending is None:
            return f"{self.collection}: lag unknown"
        return None


def _row(r: Any) -> SyncState:
    return SyncState(r.source, r.target, r.collection, r.method, r.state, r.note, _aware(r.copied_at),
                     _aware(r.completed_at), None if r.pending is None else int(r.pending), int(r.rows or 0))


class SyncStates:
    def __init__(self, store: ControlStore) -> None:
        self.store = store
        with store._tx() as conn:  # noqa: SLF001 - the control store's own transaction and error translation
            _md.create_all(conn)

    def get(self, *, source: str | None = None, target: str | None = None) -> list[SyncState]:
        stmt = sa.select(sync_states_t).order_by(sync_states_t.c.source, sync_states_t.c.target,
                                                 sync_states_t.c.collection)
        if source is not None:
            stmt = stmt.where(sync_states_t.c.source == source)
        if target is not None:
            stmt = stmt.where(sync_states_t.c.target == target)
        with self.store._tx() as conn:  # noqa: SLF001
            return [_row(r) for r in conn.execute(stmt)]

    def _put(self, source: str, target: str, collection: str, **values: Any) -> None:
        key = (sync_states_t.c.source == source, sync_states_t.c.target == target,
               sync_states_t.c.collection == collection)
        with self.store._tx() as conn:  # noqa: SLF001
            if not conn.execute(sa.update(sync_states_t).where(*key).values(**values)).rowcount:
                conn.execute(sa.insert(sync_states_t).values(source=source, target=target, collection=collection,
                                                             **{"method": "capture", "state": "copying", "rows": 0,
                                                                **values}))

    def copying(self, source: str, target: str, collection: str, method: str) -> None:
        self._put(source, target, collection, method=method, state="copying", note=None, completed_at=None,
                  pending=None)

    def live(self, source: str, target: str, collection: str, *, method: str, copied_at: dt.datetime,
             rows: int) -> None:
        self._put(source, target, collection, method=method, state="live", note=None, copied_at=copied_at,
                  rows=rows)

    def record_pass(self, source: str, target: str, collection: str, *, method: str,
                    completed_at: dt.datetime | None, pending: int | None, rows: int) -> None:
        """A pass over `collection` ended: `completed_at` when it drained every change (None keeps the last one)."""
        current = {s.collection: s for s in self.get(source=source, target=target)}.get(collection)
        values: dict[str, Any] = {"method": method, "pending": pending, "rows": (current.rows if current else 0) + rows}
        if completed_at is not None:
            values["completed_at"] = completed_at
        if current is None or method == "updated_at":
            values.update(state="live", note=None)
        self._put(source, target, collection, **values)

    def invalidate(self, *, source: str | None = None, target: str | None = None,
                   collections: list[str] | None = None, why: str) -> int:
        """Mark matching live states stale (the next sync copies them in full again); returns how many."""
        stmt = sa.update(sync_states_t).where(sync_states_t.c.state != "stale")
        if source is not None:
            stmt = stmt.where(sync_states_t.c.source == source)
        if target is not None:
            stmt = stmt.where(sync_states_t.c.target == target)
        if collections is not None:
            stmt = stmt.where(sync_states_t.c.collection.in_(collections))
        with self.store._tx() as conn:  # noqa: SLF001
            return conn.execute(stmt.values(state="stale", note=why)).rowcount

    def readiness(self, source: str, target: str) -> str | None:
        """None when `target` is known to hold `source`'s records up to a recorded lag; otherwise what is at risk."""
        states = self.get(source=source, target=target)
        if not states:
            return f"{target!r} has never completed a sync from {source!r}: it may hold none of its records"
        problems = [p for p in (s.problem() for s in states) if p]
        if problems:
            return f"{target!r} is not in sync with {source!r}: " + "; ".join(problems)
        return None

    def lag(self, source: str, target: str) -> tuple[int, dt.datetime] | None:
        """(changes pending after the last pass, oldest completed pass) when every collection is live."""
        states = self.get(source=source, target=target)
        if not states or any(s.problem() for s in states):
            return None
        done = [s.completed_at for s in states if s.completed_at is not None]  # all of them: problem() says so
        return sum(s.pending or 0 for s in states), min(done)
