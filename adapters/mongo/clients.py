"""Clients the MongoDB adapter opens besides pymongo's, chosen by the URL's scheme.

Production URLs (`mongodb://`, `mongodb+srv://`) always go to pymongo. An in-process stand-in — the tests' mongomock
double (tests/mongomock_double.py registers `mongomock://`) — brings its own `connect` and, since it has no index and
no transactions, may bring faster ways through the adapter's two hot loops. Nothing here imports the stand-in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InProcessClient:
    connect: Callable[[str], tuple[Any, str | None]]  # url -> (client, the URL's database or None)
    each: Callable[[Any], Iterator[dict[str, Any]]] | None = None  # the documents of a cursor, faster than iterating it
    # (collection, lo, hi) -> the `_id`s of a one-field key in (lo, hi] (None bounds are open), or None: use the filter
    ids_in_range: Callable[[Any, Any, Any], list[Any] | None] | None = None
    transactions: bool = False


_CLIENTS: dict[str, InProcessClient] = {}
_LOCK = threading.Lock()


def register(scheme: str, client: InProcessClient) -> None:
    """Serve URLs `scheme://...` with `client` in this process."""
    with _LOCK:
        _CLIENTS[scheme] = client


def for_url(url: str | None) -> InProcessClient | None:
    scheme, sep, _ = (url or "").partition("://")
    return _CLIENTS.get(scheme) if sep else None
