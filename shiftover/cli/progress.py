"""What `shiftover migrate` shows while a run copies: a rich progress bar fed from the control store (the same numbers
the Prefect progress artifact shows), then a spinner while the target is validated (or a blue-green run cuts over).
It draws on the CLI's stderr Console, the one the log lines go through (shiftover/cli/logs.py), so they print above
it instead of into it."""

from __future__ import annotations

import os
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PHASES = {  # the run's summary["phase"] once copying is over → what the spinner says
    "validate": "Validating the target: counts, digests and schema (Great Expectations) …",
    "freeze": "Cutting over: source frozen for the final delta, validation and switch …",
}


class CopyProgress:
    """A context manager around the flow call; shows nothing unless stderr is a terminal (or SHIFTOVER_PROGRESS=1)."""

    def __init__(self, control: Any, run_id: str | None, console: Console, *, enabled: bool) -> None:
        self.control, self.run_id, self.console = control, run_id, console
        self.enabled = enabled and (console.is_terminal or os.environ.get("SHIFTOVER_PROGRESS") == "1")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if not self.enabled or not self.run_id:
            return
        self._thread = threading.Thread(target=self._run, name="shiftover-progress", daemon=True)
        self._thread.start()

    def _phase(self) -> str | None:
        run = self.control.run(self.run_id)
        return run.summary.get("phase") if run is not None and run.status == "running" else None

    def _run(self) -> None:
        phase = self._copying()
        if phase is None:
            return
        with self.console.status(PHASES[phase], spinner="dots") as spinner:
            while not self._stop.wait(0.3):
                now = self._phase()
                if now not in PHASES:
                    break
                if now != phase:
                    phase = now
                    spinner.update(PHASES[phase])

    def _copying(self) -> str | None:
        """The progress bar, until the flow ends (None) or the run enters one of PHASES (returned)."""
        with Progress(TextColumn("[bold]copying"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False) as bar:
            task = bar.add_task("copy", total=None)
            phase = None
            while not self._stop.is_set() and phase not in PHASES:
                run = self.control.run(self.run_id)
                if run is not None and run.status == "running":
                    total, phase = run.summary.get("planned_rows"), run.summary.get("phase")
                    if total:
                        bar.update(task, total=total)
                bar.update(task, completed=self.control.rows_done(self.run_id, in_flight=True))
                self._stop.wait(0.3)
            bar.update(task, completed=self.control.rows_done(self.run_id, in_flight=True))
        return None if self._stop.is_set() else phase

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
