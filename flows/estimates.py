"""Honest time: how long an immediate migration will take, and so how long it freezes the source's writes, from what
this installation measured, and a warning when that is longer than backends.yaml allows (migration.max_freeze_s).

The rate is the whole flow's (plan, freeze, copy, keys, validation, switch: everything the source is frozen for) in the
latest successful immediate migration between providers of the same kinds, as the control store keeps its report.
Without one, default rates per copy path give a first guess, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from shiftover.adapters.config import Config
from shiftover.control.store import ControlStore, Run
from shiftover.tasks.digests import BATCHED
from shiftover.tasks.migration import CollectionPlan

# First guesses (rows/s of the copy alone) before this installation has measured anything, on a 2-core machine.
DEFAULT_RATES = {"binary COPY": 250_000, "native copy (sqlite)": 150_000, BATCHED: 25_000}


def estimate(control: ControlStore, config: Config, source: str, target: str,
             plans: Sequence[CollectionPlan]) -> tuple[float, str]:
    """(seconds, where the figure comes from) for an immediate migration of `plans`."""
    rows = sum(p.rows for p in plans)
    measured = _latest(control.runs(limit=50), config, source, target)
    if measured is not None:
        run, done_rows, seconds = measured
        return rows * seconds / done_rows, (f"estimated from run {run.run_id} ({run.source} → {run.target}: "
                                            f"{done_rows:,} rows in {seconds:.1f} s)")
    guess = sum(p.rows / DEFAULT_RATES.get(p.path, DEFAULT_RATES[BATCHED]) for p in plans)
    return guess, "estimated from default rates: no immediate migration between these kinds has finished here yet"


def _latest(runs: Sequence[Run], config: Config, source: str, target: str) -> tuple[Run, int, float] | None:
    kinds = (config.providers[source].kind, config.providers[target].kind)
    for run in runs:  # newest first
        if (run.kind, run.strategy, run.status) != ("migrate", "immediate", "succeeded") or run.summary.get("dry_run"):
            continue
        then = (config.providers.get(run.source or ""), config.providers.get(run.target or ""))
        if then[0] is None or then[1] is None or (then[0].kind, then[1].kind) != kinds:
            continue
        done_rows = sum(int(c.get("source_rows") or 0) for c in run.summary.get("collections", []))
        seconds = float(run.summary.get("seconds") or 0.0)
        if done_rows > 0 and seconds > 0:
            return run, done_rows, seconds
    return None


def freeze_warning(source: str, seconds: float, limit_s: float, *, expected: bool) -> str | None:
    """The warning when an immediate migration freezes (or froze) the source's writes longer than the limit."""
    if seconds <= limit_s:
        return None
    how = "would freeze" if expected else "froze"
    return (f"warning: immediate {how} writes on {source!r} for {'about ' if expected else ''}{seconds:,.0f} s, more "
            f"than migration.max_freeze_s ({limit_s:,.0f} s): --strategy blue_green copies while the source stays "
            "writable and freezes it for well under a second")
