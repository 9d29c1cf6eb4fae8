"""A read-only view of the control store, for readers that must never write (the HTTP endpoint's GETs).

It reads the pointer, and for GET /status the probes, health states and routes. Unlike ControlStore it creates no
table and no row, and the engine itself refuses writes: SQLite is opened with
`mode=ro`, PostgreSQL sessions start with `default_transaction_read_only=on`. Every failure is a BackendError:

- NoPointerYet (BACKEND_001): the store, its table or the pointer row does not exist yet;
- ProviderUnavailable (BACKEND_006): the store is unreachable, or cannot be read (a damaged file, an altered table,
  a value that does not parse).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.errors import ProviderNotFound, ProviderUnavailable, redact, url_secrets
from shiftover.control.store import Pointer
from shiftover.control.tables import health_states_t, pointer_t, probes_t, routes_t


class NoPointerYet(ProviderNotFound):
    """The control store holds no active-backend pointer yet."""


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):  # a value written by hand
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"a timestamp was expected, not {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class ControlView:
    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self._url = url
        self._sqlite_file: str | None = None
        if url.startswith(("sqlite:///", "sqlite+pysqlite:///")):
            path = url.split(":///", 1)[1].split("?", 1)[0]
            self._sqlite_file = None if path in ("", ":memory:") else path
            engine_url = f"sqlite:///file:{path}?mode=ro&uri=true"
            # a connection per read: a pooled one would keep reading a file that has since been replaced
            args: dict[str, Any] = {"connect_args": {"timeout": timeout_s}, "poolclass": sa.pool.NullPool}
        else:
            engine_url = "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url
            args = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2, "pool_timeout": timeout_s,
                    "connect_args": {"connect_timeout": max(1, int(timeout_s)),
                                     "options": "-c default_transaction_read_only=on "
                                                f"-c statement_timeout={int(timeout_s * 1000)}"}}
        try:
            self.engine = sa.create_engine(engine_url, **args)
        except (sa.exc.ArgumentError, ValueError, ImportError):
            raise ProviderUnavailable("control.url is not a URL the control store can use",
                                      hint="fix control.url in backends.yaml", provider="control") from None

    def close(self) -> None:
        self.engine.dispose()

    def pointer(self) -> Pointer:
        """The active-backend pointer; raises NoPointerYet or ProviderUnavailable, never writes."""
        if self._sqlite_file is not None and not os.path.exists(self._sqlite_file):
            raise self._none("the control store has not been created yet")
        with self._reading() as conn:
            if not sa.inspect(conn).has_table(pointer_t.name):
                raise self._none("the control store has no pointer table yet")
            row = conn.execute(sa.select(pointer_t).where(pointer_t.c.id == 1)).first()
            if row is None:
                raise self._none("no active backend has been recorded yet")
            return Pointer(int(row.epoch), str(row.provider), _utc(row.since), str(row.reason))

    # what GET /status reads besides the pointer (adapters/status.StatusSource), read-only like it
    def probes(self, provider: str, *, since: dt.datetime | None = None, limit: int = 1000) -> list[ProbeResult]:
        stmt = sa.select(probes_t).where(probes_t.c.provider == provider).order_by(probes_t.c.at.desc()).limit(limit)
        if since is not None:
            stmt = stmt.where(probes_t.c.at >= since)
        with self._reading() as conn:
            return [ProbeResult(str(r.provider), bool(r.ok), float(r.latency_ms), r.error, (), _utc(r.at))
                    for r in conn.execute(stmt)]

    def health_state(self, provider: str) -> str | None:
        with self._reading() as conn:
            row = conn.execute(sa.select(health_states_t.c.state)
                               .where(health_states_t.c.provider == provider)).first()
        return str(row.state) if row else None

    def routes(self) -> dict[str, str]:
        with self._reading() as conn:
            return {str(r.collection): str(r.provider) for r in conn.execute(sa.select(routes_t))}

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A connection; any failure of the store becomes ProviderUnavailable (NoPointerYet passes through)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except NoPointerYet:
            raise
        except sa.exc.OperationalError as exc:
            raise ProviderUnavailable(f"the control store is unreachable: {self._text(exc.orig)}",
                                      hint="check control.url and the database behind it", provider="control") from None
        except (sa.exc.SQLAlchemyError, ValueError, TypeError, AttributeError) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ProviderUnavailable(f"the control store cannot be read: {self._text(cause)}",
                                      hint="restore control.url's database from a backup, or point control.url "
                                           "at a new one", provider="control") from None

    def _none(self, what: str) -> NoPointerYet:
        return NoPointerYet(what, hint="start `shiftover serve` or run `shiftover status`: either sets the pointer "
                                       "from the configuration", provider="control")

    def _text(self, exc: BaseException | None) -> str:
        lines = str(exc).strip().splitlines()
        return redact(lines[0] if lines else type(exc).__name__, url_secrets(self._url))[:300]
