"""The reports the CLI prints in a terminal (the artifacts keep their markdown): migration, failover, health, sync
and test suite, laid out by cli/tables.py so no name is cut at any width, verdicts coloured, booleans as words.
Called after the flow ran, so importing the report modules here costs nothing more."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shiftover.cli.tables import Col, show, verdict

if TYPE_CHECKING:
    from shiftover.flows.failover import FailoverReport
    from shiftover.tasks.health import ProviderHealth
    from shiftover.tasks.reporting import MigrationReport
    from shiftover.tasks.sync_result import SyncResult
    from shiftover.tasks.testsuite_model import TestSuiteReport

_STATUS_COLOUR = {"switched": "green", "validated": "green", "dry-run": "yellow", "in-progress": "yellow",
                  "blocked": "red", "failed": "red", "superseded": "red"}


def _plain(markdown: str) -> str:
    return re.sub(r"\*\*|`", "", markdown)


def _bullets(console: Console, lines: Sequence[str]) -> None:
    """One bullet per line, wrapped at spaces (a name longer than the line is kept whole, the terminal wraps it)."""
    grid = Table.grid()
    grid.add_column(width=3, no_wrap=True)
    grid.add_column(overflow="fold")
    for line in lines:
        grid.add_row(" • ", Text(line))
    console.print(grid)


def heading(console: Console, text: str) -> None:
    console.print()
    console.print(Text(text, style="bold underline"), soft_wrap=True)


def migration(console: Console, r: MigrationReport) -> None:
    from shiftover.tasks.report_views import details, rows_text
    from shiftover.tasks.report_views import verdict as collection_verdict
    from shiftover.tasks.reporting import headline

    console.print(Text(f"Migration {r.source} → {r.target} ({r.strategy})", style="bold"), soft_wrap=True)
    console.print(Text(_plain(headline(r)), style=_STATUS_COLOUR.get(r.status, "")), highlight=False)
    facts = [f"run: {r.run_id} started {r.started:%Y-%m-%d %H:%M:%S} UTC, {r.seconds:.1f} s",
             f"records: {r.rows:,} in {len(r.collections)} collection(s)"]
    if r.estimated_seconds is not None:
        facts.append(f"estimated time (the source is frozen for about as long on immediate): "
                     f"{r.estimated_seconds:.1f} s")
    if r.freeze_ms is not None:
        facts.append(f"source write freeze: {r.freeze_ms:,.0f} ms; enforced in the engine on: "
                     f"{', '.join(r.frozen_engine) or 'none (router-level only)'}")
    if r.phase_seconds:
        facts.append("time per phase: " + " · ".join(f"{k} {v:.2f} s" for k, v in r.phase_seconds.items()))
    _bullets(console, facts)
    if r.error:
        console.print(Text("Error: ", style="bold red") + Text(r.error), highlight=False)
    heading(console, "Is my data all there?")
    show(console, "Collections", (Col("collection", "name"), Col("rows source", justify="right"),
                                  Col("rows target", justify="right"), Col("verdict", coloured=True)),
         [(c.name, rows_text(c.source_rows), rows_text(c.target_rows), collection_verdict(c)) for c in r.collections])
    _bullets(console, [f"{c.name}: {details(c)}" for c in r.collections])
    for c in r.collections:
        if c.mismatched_ranges:
            console.print(Text(f"{c.name}: ", style="bold red") + Text("key ranges that differ: "
                                                                       + ", ".join(c.mismatched_ranges)))
    if r.expectations:
        heading(console, "Expectations (Great Expectations)")
        grid = Table.grid()
        grid.add_column(width=7, no_wrap=True)
        grid.add_column(overflow="fold")
        for e in r.expectations:
            grid.add_row(verdict("pass" if e.success else "FAIL"), Text(f"{e.suite}: {e.expectation} — {e.detail}"))
        console.print(grid)
    if r.notes:
        heading(console, "Notes")
        _bullets(console, r.notes)


def failover(console: Console, r: FailoverReport) -> None:
    from shiftover.flows.failover import render

    lines = render(r).splitlines()
    console.print(Text(_plain(lines[0].lstrip("# ")), style="bold"), soft_wrap=True)
    console.print(Text(_plain(lines[2]), style=_STATUS_COLOUR.get(r.status, "")), highlight=False)
    _bullets(console, [line[2:] for line in lines[3:] if line.startswith("- ")])
    if r.candidates:
        show(console, "Candidates", (Col("provider", "name"), Col("rank"), Col("healthy", coloured=True),
                                     Col("in sync", coloured=True), Col("latency ms", justify="right"),
                                     Col("lag s"), Col("error", "text")),
             [(c["provider"], c["rank"], c["healthy"], c.get("in_sync"), c["latency_ms"], c["lag_s"],
               c["error"] or "-") for c in r.candidates])


def health(console: Console, result: Sequence[ProviderHealth]) -> None:
    show(console, "Health", (Col("provider", "name"), Col("active"), Col("kind"), Col("status", coloured=True),
                             Col("latency", justify="right"), Col("uptime", justify="right"), Col("probes"),
                             Col("error", "text")),
         [(h.provider, h.active, h.kind, h.status, f"{h.latency_ms:.1f} ms",
           "-" if h.uptime is None else f"{h.uptime * 100:.2f}%", h.probes, h.error or "-") for h in result])


def sync(console: Console, results: Sequence[SyncResult]) -> None:
    show(console, "Sync", (Col("standby", "name"), Col("from", "name"), Col("method"), Col("rows copied"),
                           Col("created", "text"), Col("not synced", "text"), Col("lag s"), Col("seconds")),
         [(row["target"], row["source"], row["method"], row["rows copied"], row["created"], row["not synced"],
           row["lag_s"], row["seconds"]) for row in (r.row() for r in results)])


def test_suite(console: Console, report: TestSuiteReport) -> None:
    from shiftover.tasks.testsuite_render import cell

    cols = [Col("provider", "name")] + [Col(c, "text", coloured=True) for c in report.categories]
    rows: list[list[Any]] = []
    for p in report.providers:
        outcomes = [o for o in report.outcomes if o.provider == p]
        failed = sum(t.status == "failed" for o in outcomes for t in o.tests)
        rows.append([p, *(cell(report.outcome(p, c)) for c in report.categories), failed])
    show(console, f"Test suite {report.id}", [*cols, Col("failed tests", justify="right")], rows)
    for line in report.errors:
        console.print(Text("failed ", style="red") + Text(line), highlight=False)
    s = report.summary
    console.print(Text.assemble((f"{s.passed} passed", "bold green"), ", ",
                                (f"{s.failed} failed", "bold red" if s.failed else "bold"), ", ",
                                (f"{s.skipped} skipped", "bold yellow" if s.skipped else "bold"),
                                f" (success rate {s.success_rate:.1%})."), highlight=False)
    for kind in ("html", "json"):
        if report.files.get(kind):
            console.print(f"Report ({kind}): {report.files[kind]}", soft_wrap=True, highlight=False)

