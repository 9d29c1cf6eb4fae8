"""Leases: one run at a time changes a provider.

A lease is a row of the control store's `leases` table per provider: the holder's run id, the kind of run
(migrate, sync, failover, rollback, release), its host and pid, a token for this acquisition, and a heartbeat
that a thread of the holding process renews every `control.heartbeat_s`. Taking a lease is atomic: an insert, or
a compare-and-swap on the token of the row that was read. A held lease is taken over only when its holder is
gone:

- its heartbeat is older than `control.lease_ttl_s` (the holder was killed, or lost the control store), or
- it was taken on this host by a process that no longer exists (kill -9: the re-run, same run id or not, goes
  on at once instead of waiting for the TTL).

Otherwise the second run is refused at once with LeaseHeld (BACKEND_015) naming the holder. The same run id is
not enough to take over: two identical `shiftover migrate` commands resolve to the same unfinished run, and the
second must not run beside the first. On PostgreSQL providers the holder also keeps a session advisory lock
(Adapter.run_lock) for as long as it runs; the server drops it with the session, so a killed holder never blocks
its successor there.

`preempt` lets a failover take over a lease held by a sync: a failover cannot wait for a sync stuck on a dead
primary. The preempted sync sees its lease lost at its next check and stops.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shiftover.adapters.errors import BackendError, LeaseHeld, TransientError

if TYPE_CHECKING:
    from shiftover.adapters.config import Config
    from shiftover.control.store import ControlStore

log = logging.getLogger("shiftover.leases")
_md = sa.MetaData()
_ts = sa.DateTime(timezone=True)

leases_t = sa.Table(
    "leases", _md,
    sa.Column("provider", sa.String(200), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("token", sa.String(40), nullable=False),
    sa.Column("acquired", _ts, nullable=False),
    sa.Column("heartbeat", _ts, nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


@dataclass(frozen=True)
class Lease:
    provider: str
    run_id: str
    kind: str
    host: str
    pid: int
    token: str
    acquired: dt.datetime
    heartbeat: dt.datetime

    def age_s(self, at: dt.datetime | None = None) -> float:
        return ((at or _now()) - self.heartbeat).total_seconds()

    def describe(self) -> str:
        return (f"{self.kind} run {self.run_id} (host {self.host}, pid {self.pid}, since "
                f"{self.acquired:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {self.age_s():.0f} s ago)")


def _row(r: Any) -> Lease:
    return Lease(r.provider, r.run_id, r.kind, r.host, r.pid, r.token, _aware(r.acquired), _aware(r.heartbeat))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_gone(lease: Lease, ttl_s: float, *, at: dt.datetime | None = None) -> str | None:
    """Why `lease`'s holder can be taken over (None: it is alive as far as anyone can tell)."""
    if lease.age_s(at) > ttl_s:
        return f"its heartbeat is {lease.age_s(at):.0f} s old (TTL {ttl_s:g} s)"
    if lease.host == socket.gethostname() and lease.pid != os.getpid() and not _pid_alive(lease.pid):
        return f"its process {lease.pid} on this host is gone"
    return None


class LeaseTable:
    """The `leases` table of a control store. Every method is one short transaction."""

    def __init__(self, store: ControlStore) -> None:
        self.store = store
        with store._tx() as conn:  # noqa: SLF001 - the control store's own transaction and error translation
            _md.create_all(conn)

    def get(self, provider: str) -> Lease | None:
        with self.store._tx() as conn:  # noqa: SLF001
            r = conn.execute(sa.select(leases_t).where(leases_t.c.provider == provider)).first()
        return _row(r) if r else None

    def all(self) -> list[Lease]:
        with self.store._tx() as conn:  # noqa: SLF001
            return [_row(r) for r in conn.execute(sa.select(leases_t).order_by(leases_t.c.provider))]

    def acquire(self, provider: str, *, run_id: str, kind: str, token: str, ttl_s: float,
                preempt: Sequence[str] = ()) -> str | None:
        """Take `provider`'s lease for `token`; returns a note when it was taken over from someone. Raises LeaseHeld."""
        values = {"run_id": run_id, "kind": kind, "host": socket.gethostname(), "pid": os.getpid(), "token": token}
        for _ in range(10):
            at = _now()
            current = self.get(provider)
            if current is None:
                try:
                    with self.store._tx() as conn:  # noqa: SLF001
                        conn.execute(sa.insert(leases_t).values(provider=provider, acquired=at, heartbeat=at,
                                                                **values))
                    return None
                except sa.exc.IntegrityError:
                    continue  # another run inserted it first: read it and decide again
            if current.token == token:
                self.renew([provider], token)
                return None
            why = holder_gone(current, ttl_s, at=at)
            if why is None and current.kind in preempt:
                why = f"a {kind} preempts a {current.kind}"
            if why is None:
                err = LeaseHeld(
                    f"another run holds {provider!r}: {current.describe()}", provider=provider,
                    hint=f"wait for run {current.run_id} to finish (shiftover status lists the leases); a killed run's "
                         f"lease expires {ttl_s:g} s after its last heartbeat")
                err.holder = current  # type: ignore[attr-defined]
                err.holder_kind = current.kind  # type: ignore[attr-defined]
                raise err
            with self.store._tx() as conn:  # noqa: SLF001 - compare-and-swap on the token that was read
                took = conn.execute(sa.update(leases_t).where(
                    leases_t.c.provider == provider, leases_t.c.token == current.token
                ).values(acquired=at, heartbeat=at, **values)).rowcount
            if took == 1:
                return f"took over {provider!r} from {current.describe()}: {why}"
        raise LeaseHeld(f"the lease on {provider!r} keeps changing hands", provider=provider,
                        hint="another run is starting on it; re-run in a moment")

    def renew(self, providers: Sequence[str], token: str) -> list[str]:
        """Refresh the heartbeat of the leases `token` holds; returns the providers among `providers` it no longer
        holds (taken over after the TTL, or preempted)."""
        with self.store._tx() as conn:  # noqa: SLF001
            conn.execute(sa.update(leases_t).where(leases_t.c.token == token).values(heartbeat=_now()))
            held = {r.provider for r in conn.execute(sa.select(leases_t.c.provider).where(leases_t.c.token == token))}
        return [p for p in providers if p not in held]

    def release(self, providers: Sequence[str], token: str) -> None:
        with self.store._tx() as conn:  # noqa: SLF001
            conn.execute(sa.delete(leases_t).where(leases_t.c.provider.in_(list(providers)),
                                                   leases_t.c.token == token))

    def holder(self, provider: str, ttl_s: float) -> Lease | None:
        """The live holder of `provider`'s lease, if any."""
        lease = self.get(provider)
        return lease if lease is not None and holder_gone(lease, ttl_s) is None else None


class RunLease:
    """Hold the leases of one run on `providers` while the block runs: control-store rows renewed by a heartbeat
    thread, plus the engine's run lock (a PostgreSQL session advisory lock) on each of `engine_locks` that has one.
    Everything is let go on exit, whatever happened; `check()` raises LeaseHeld once a lease was lost."""

    def __init__(self, config: Config, control: ControlStore, providers: Sequence[str], *, run_id: str, kind: str,
                 engine_locks: Sequence[str] | None = None, preempt: Sequence[str] = ()) -> None:
        self.config, self.control = config, control
        self.providers = sorted(set(providers))  # one order for every run: no two runs wait on each other
        self.engine_locks = self.providers if engine_locks is None else sorted(set(engine_locks))
        self.run_id, self.kind, self.preempt = run_id, kind, tuple(preempt)
        self.token = uuid.uuid4().hex
        self.ttl_s = config.control.lease_ttl_s
        self.notes: list[str] = []
        self.lost: list[str] = []
        self._table = LeaseTable(control)
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLease:
        taken: list[str] = []
        try:
            for provider in self.providers:
                note = self._table.acquire(provider, run_id=self.run_id, kind=self.kind, token=self.token,
                                           ttl_s=self.ttl_s, preempt=self.preempt)
                taken.append(provider)
                if note:
                    log.warning("%s", note)
                    self.notes.append(note)
            for provider in self.engine_locks:
                self._engine_lock(provider)
        except BaseException:
            self._stack.close()
            self._table.release(taken, self.token)
            raise
        self._thread = threading.Thread(target=self._beat, name=f"shiftover-lease-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def _engine_lock(self, provider: str) -> None:
        from shiftover.adapters.registry import open_adapter

        try:
            adapter = self._stack.enter_context(open_adapter(self.config, provider))
            got = self._stack.enter_context(adapter.run_lock())
        except TransientError as exc:  # the run itself will meet the same error and report it; the lease still holds
            log.warning("no engine run lock on %s: %s", provider, exc)
            return
        if not got:
            raise LeaseHeld(f"another Shiftover session holds the run lock of {provider!r} in its engine",
                            provider=provider,
                            hint="another run is working on this database (perhaps with another control store); "
                                 "wait for it to finish")

    def _beat(self) -> None:
        interval = self.config.control.heartbeat_s
        while not self._stop.wait(interval):
            try:
                lost = self._table.renew(self.providers, self.token)
            except BackendError as exc:  # the control store is down: the next beat tries again, the TTL runs
                log.warning("could not renew the leases of run %s: %s", self.run_id, exc)
                continue
            if lost and not self.lost:
                log.error("run %s lost its lease on %s", self.run_id, ", ".join(lost))
            self.lost = lost

    def check(self) -> None:
        """Raise LeaseHeld if another run took one of this run's leases (after the TTL, or by preemption)."""
        lost = self.lost or self._table.renew(self.providers, self.token)
        if lost:
            self.lost = lost
            holders = [h for h in (self._table.get(p) for p in lost) if h is not None]
            raise LeaseHeld(f"run {self.run_id} lost its lease on {', '.join(lost)}"
                            + (f" to {holders[0].describe()}" if holders else ""),
                            provider=lost[0], hint="another run took over; this run stops here")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._stack.close()
        finally:
            self._table.release(self.providers, self.token)
