"""uvicorn's h11 protocol with a deadline for a request's headers.

uvicorn (0.54) times out idle keep-alive connections but not a connection that never completes its first request:
a client that connects and sends nothing, or sends headers a byte at a time (slowloris), holds its slot until it
leaves, and with `limit_concurrency` enough of them lock everyone else out. This subclass closes a connection whose
request headers have not all arrived `timeout_s` after it opened or after its previous response. It relies on
H11Protocol's attributes `cycle`, `conn`, `transport` and `loop`; tests/test_serve_hardening.py pins the behaviour.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

TESTED_WITH = "0.54"


def deadline_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    if not uvicorn.__version__.startswith(TESTED_WITH):
        import warnings

        warnings.warn(f"{__name__} was tested with uvicorn {TESTED_WITH}, found {uvicorn.__version__}; "
                      "run tests/test_serve_hardening.py", stacklevel=2)

    class DeadlineH11(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_s, self._expire)

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _expire(self) -> None:
            if self.transport.is_closing() or not self._waiting_for_headers():
                return
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()

    return DeadlineH11
