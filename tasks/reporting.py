"""Migration reports: one model, rendered as markdown for the CLI and artifacts, and as a table artifact."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from shiftover.tasks.report_model import MigrationReport
from shiftover.tasks.report_views import (
    collection_table,
    md_cell,
    phase_chart_markdown,
    report_html,
    verdict,
)

if TYPE_CHECKING:
    from shiftover.control.store import ControlStore

PROGRESS_EVERY_S = 0.5  # the least time between two moves of the progress artifact


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def artifact_key(report: MigrationReport, suffix: str = "") -> str:
    return f"migrate-{slug(report.source)}-to-{slug(report.target)}{suffix}"


def headline(r: MigrationReport) -> str:
    """One sentence (markdown) on what the run did and where the pointer is."""
    return {
        "switched": f"**Cut over.** `{r.target}` is now the active backend (epoch {r.epoch_before} → {r.epoch_after}).",
        "validated": f"**Copied and validated.** The pointer was left on `{r.active_after}` (epoch {r.epoch_before}), "
                     "as asked (--no-switch).",
        "dry-run": "**Dry run.** Nothing was changed.",
        "blocked": f"**Cutover blocked.** The pointer stays on `{r.active_after}` (epoch {r.epoch_before}).",
        "failed": f"**Migration failed.** The pointer stays on `{r.active_after}` (epoch {r.epoch_before}).",
        "in-progress": f"**In progress.** Collections already moved are routed to `{r.target}`; the pointer stays on "
                       f"`{r.active_after}` until the last one moves. The next run continues.",
    }[r.status]


def render_markdown(r: MigrationReport, *, chart: bool = True) -> str:
    """The report as markdown; `chart=False` leaves out the SVG image (a terminal cannot show it)."""
    lines = [
        f"# Migration {r.source} → {r.target} ({r.strategy})",
        "",
        headline(r),
        "",
        f"- run: `{r.run_id}` started {r.started:%Y-%m-%d %H:%M:%S} UTC, {r.seconds:.1f} s",
        f"- records: {r.rows:,} in {len(r.collections)} collection(s)",
    ]
    if r.estimated_seconds is not None:
        lines.append(f"- estimated time (the source is frozen for about as long on immediate): "
                     f"{r.estimated_seconds:.1f} s")
    if r.freeze_ms is not None:
        engine = ", ".join(r.frozen_engine) or "none (router-level only)"
        lines.append(f"- source write freeze: {r.freeze_ms:,.0f} ms; enforced in the engine on: {engine}")
    if r.phase_seconds:
        lines.append("- time per phase: " + " · ".join(f"{k} {v:.2f} s" for k, v in r.phase_seconds.items()))
    if r.error:
        lines += ["", f"**Error:** {r.error}"]
    lines += ["", "## Is my data all there?", ""] + collection_table(r)
    bad = [c for c in r.collections if c.mismatched_ranges]
    if bad:
        lines += ["", "### Key ranges that differ", ""]
        lines += [f"- `{c.name}`: " + ", ".join(f"`{x}`" for x in c.mismatched_ranges) for c in bad]
    if chart and r.phase_seconds:
        lines += ["", "## Time per phase", ""] + phase_chart_markdown(r)
    if r.expectations:
        lines += ["", "## Expectations (Great Expectations)", "", "| suite | expectation | result | detail |",
                  "|---|---|:---:|---|"]
        lines += [f"| {e.suite} | `{e.expectation}` | {'pass' if e.success else '**FAIL**'} | {md_cell(e.detail)} |"
                  for e in r.expectations]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def table_rows(r: MigrationReport) -> list[dict[str, object]]:
    return [{"collection": c.name, "source_rows": c.source_rows, "target_rows": c.target_rows,
             "verdict": verdict(c), "mismatched_ranges": ", ".join(c.mismatched_ranges),
             "seconds": round(c.seconds, 3)} for c in r.collections]


def html_path(report: MigrationReport, report_dir: str) -> Path:
    """`<report_dir>/migrate-<source>-to-<target>-<run>.html`: one page per run, rewritten when the run resumes."""
    return Path(report_dir).resolve() / f"{artifact_key(report)}-{slug(report.run_id)}.html"


def write_html(report: MigrationReport, report_dir: str) -> Path:
    path = html_path(report, report_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = headline(report).replace("**", "").replace("`", "")
    path.write_text(report_html(report, plain), encoding="utf-8")
    return path


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def publish_report(report: MigrationReport) -> Path:
    """Write the self-contained HTML page, then the markdown, table and link artifacts under their stable keys."""
    path = write_html(report, report.report_dir)
    create_markdown_artifact(key=artifact_key(report), markdown=render_markdown(report),
                             description=f"Migration {report.source} → {report.target}: {report.status}")
    create_table_artifact(key=artifact_key(report, "-table"), table=table_rows(report),
                          description="Per collection: source rows, target rows, verdict, seconds")
    create_link_artifact(key=artifact_key(report, "-html"), link=path.as_uri(), link_text=path.name,
                         description="The whole report as one self-contained HTML page (a file on the worker)")
    return path


def advance_progress(progress_id: str, percent: float) -> None:
    """Move the progress artifact `start_progress` made (its id travels between flows as text)."""
    update_progress_artifact(UUID(progress_id), progress=min(100.0, percent))


def start_progress(report: MigrationReport) -> str | None:
    return str(create_progress_artifact(progress=0.0, key=artifact_key(report, "-progress"),
                                        description=f"Rows copied {report.source} → {report.target}"))


class ProgressFeed:
    """Moves a run's progress artifact from the control store's counts: the chunks done and the rows that chunks still
    copying reported (tasks.migration.ChunkMeter). At most once every PROGRESS_EVERY_S, and only when it changed."""

    def __init__(self, progress_id: str | None, control: ControlStore, run_id: str, total_rows: int) -> None:
        self.progress_id, self.control, self.run_id, self.total = progress_id, control, run_id, max(total_rows, 1)
        self._at, self._percent = 0.0, -1.0

    def tick(self, *, force: bool = False) -> None:
        if not self.progress_id or (not force and time.monotonic() - self._at < PROGRESS_EVERY_S):
            return
        self._at = time.monotonic()
        percent = min(100.0, 100.0 * self.control.rows_done(self.run_id, in_flight=True) / self.total)
        if percent != self._percent:
            advance_progress(self.progress_id, percent)
            self._percent = percent


def completed(pending: list[PrefectFuture], feed: ProgressFeed) -> Iterator[PrefectFuture]:
    """Each future of `pending` as soon as it finishes (taken out of the list; the caller may add more meanwhile),
    feeding the progress artifact while it waits. `feed.tick(force=True)` after the last one is the caller's."""
    finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()
    watched: set[int] = set()
    while pending:
        for f in pending:
            if id(f) not in watched:
                watched.add(id(f))
                f.add_done_callback(finished.put)
        try:
            done = finished.get(timeout=PROGRESS_EVERY_S)
        except queue.Empty:
            feed.tick()
            continue
        pending.remove(done)
        watched.discard(id(done))  # ids are reused once a future is gone
        yield done
        feed.tick()
