"""What a subscription delivers (`Change`) and what each provider's mechanism offers (`Source`): shared by the
realtime package and its sources, which the package imports lazily."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

from shiftover.adapters.base import Key, Record

Op = Literal["insert", "update", "delete", "switched"]
OPS = ("insert", "update", "delete")


@dataclass(frozen=True)
class Change:
    """One change to a collection, as a subscription delivers it."""

    collection: str
    op: Op
    key: Key
    record: Record | None
    at: dt.datetime
    provider: str


class Source(Protocol):
    """One provider's mechanism: changes after subscribe, oldest first. poll() waits at most `timeout` seconds."""

    def poll(self, timeout: float) -> list[Change]: ...
    def close(self) -> None: ...
