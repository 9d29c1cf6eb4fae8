"""The migration strategies, one line each.

The CLI's `--strategy` choices, `MigrateParams.strategy` (and so the UI form's list), and backends.yaml's
`migration.strategy` all derive from `Strategy`. A new strategy is a module in flows/ with a function
`(params, config, control, pointer, report) -> MigrationReport` and one line here. This module sits with the
configuration because backends.yaml is validated against it; it imports no flow (the entry point is a name).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import StrEnum
from typing import Any


class Strategy(StrEnum):
    summary: str
    entry: str  # "module:function", imported when the strategy runs

    def __new__(cls, value: str, summary: str, entry: str) -> Strategy:
        member = str.__new__(cls, value)
        member._value_ = value
        member.summary = summary
        member.entry = entry
        return member

    immediate = "immediate", "freeze, copy, validate, switch", "shiftover.flows.immediate:immediate"
    gradual = ("gradual", "checkpointed batches over many runs, cut over collection by collection",
               "shiftover.flows.gradual:gradual")
    blue_green = "blue_green", "copy while live, catch up, brief freeze, switch", "shiftover.flows.bluegreen:blue_green"

    def load(self) -> Callable[..., Any]:
        module, _, function = self.entry.partition(":")
        run: Callable[..., Any] = getattr(importlib.import_module(module), function)
        return run

    @classmethod
    def of(cls, value: str) -> Strategy:
        """The strategy of this name (ValueError if there is none)."""
        return cls(value)  # type: ignore[call-arg]  # by value: the extra fields belong to the definitions only


def summaries() -> str:
    """One line for help texts and forms: `immediate: …; gradual: …; blue_green: …`."""
    return "; ".join(f"{s.value}: {s.summary}" for s in Strategy)
