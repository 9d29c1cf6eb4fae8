"""A read-only view of the control store, for readers that must never write (the HTTP endpoint's GETs).

Unlike ControlStore it creates no table and no row, and the engine itself refuses writes: SQLite is opened with
`mode=ro`, PostgreSQL sessions start with `default_transaction_read_only=on`. Every failure is a BackendError:

- NoPointerYet (BACKEND_001): the store, its table or the pointer row does not exist yet;
- ProviderUnavailable (BACKEND_006): the store is unreachable, or cannot be read (a damaged file, an altered table,
  a value that does not parse).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import sqlalchemy as sa

from shiftover.adapters.errors import ProviderNotFound, ProviderUnavailable, redact, url_secrets
from shiftover.control.store import Pointer
from shiftover.control.tables import pointer_t


class NoPointerYet(ProviderNotFound):
    """The control store holds no active-backend pointer yet."""


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
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(pointer_t.name):
                    raise self._none("the control store has no pointer table yet")
                row = conn.execute(sa.select(pointer_t).where(pointer_t.c.id == 1)).first()
                if row is None:
                    raise self._none("no active backend has been recorded yet")
                since = row.since
                if isinstance(since, str):  # a value written by hand
                    since = dt.datetime.fromisoformat(since)
                pointer = Pointer(int(row.epoch), str(row.provider), since if since.tzinfo else
                                  since.replace(tzinfo=dt.timezone.utc), str(row.reason))
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
        return pointer

    def _none(self, what: str) -> NoPointerYet:
        return NoPointerYet(what, hint="start `shiftover serve` or run `shiftover status`: either sets the pointer "
                                       "from the configuration", provider="control")

    def _text(self, exc: BaseException | None) -> str:
        lines = str(exc).strip().splitlines()
        return redact(lines[0] if lines else type(exc).__name__, url_secrets(self._url))[:300]
