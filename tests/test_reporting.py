"""The migration report as a user reads it: the per-collection verdict table, the time-per-phase chart with the freeze
window, and the self-contained HTML page. Built from a MigrationReport directly: no database, no Prefect API."""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import pytest

from shiftover.tasks.report_model import CollectionReport, ExpectationReport, MigrationReport
from shiftover.tasks.report_views import phase_svg
from shiftover.tasks.reporting import render_markdown, write_html

PHASES = {"plan": 0.12, "freeze": 0.05, "schema": 0.3, "copy": 1.8, "index": 0.2, "validate": 0.4, "switch": 0.03}


def _report(**kw: object) -> MigrationReport:
    fields: dict[str, object] = dict(
        run_id="r1", source="src", target="dst", strategy="immediate", status="blocked", epoch_before=1,
        active_after="src", freeze_ms=2345.6, phase_seconds=PHASES, seconds=3.1, frozen_engine=["src"],
        started=dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.timezone.utc),
        collections=[
            CollectionReport(name="orders", source_rows=1_234_567, target_rows=1_234_567, chunks=25, digests_equal=True,
                             digest_method="in-engine (postgresql, column hashes)", path="binary COPY", seconds=1.5),
            CollectionReport(name="order_items", source_rows=5000, target_rows=4999, chunks=1, digests_equal=False,
                             digest_method="canonical records", path="upsert", mismatched_ranges=["(start .. 700]"]),
            CollectionReport(name="customers", source_rows=300)],
        expectations=[
            ExpectationReport(suite="record_counts", expectation="source_rows == target_rows", success=True,
                              detail="row counts equal in 3/3 collections"),
            ExpectationReport(suite="integrity", expectation="source_digest == target_digest", success=False,
                              detail="digests equal in 2/3 key ranges: order_items (start .. 700]")],
        notes=["the estimate is <from 2 runs> & rough"])
    fields.update(kw)
    return MigrationReport.model_validate(fields)


def _table(markdown: str) -> dict[str, list[str]]:
    """The rows of the table under "Is my data all there?", by collection."""
    section = markdown.split("## Is my data all there?\n\n", 1)[1]
    lines = section.split("\n\n", 1)[0].splitlines()
    assert lines[0] == "| collection | rows source | rows target | verdict |"
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in x.strip("|").split("|")] for x in lines[2:])}


def _svg(markdown: str) -> str:
    found = re.findall(r"!\[time per phase\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert len(found) == 1, "one time-per-phase image"
    return base64.b64decode(found[0]).decode("utf-8")


def test_table_has_one_row_per_collection_with_both_counts_and_the_verdict() -> None:
    md = render_markdown(_report())
    assert _table(md) == {"orders": ["1,234,567", "1,234,567", "✓ equal"],
                          "order_items": ["5,000", "4,999", "✗ differs"],
                          "customers": ["300", "–", "– not measured"]}
    details = md.split("Details:", 1)[1]  # the long details sit below the table, not in it
    assert "in-engine (postgresql, column hashes)" in details and "binary COPY" in details
    assert "(start .. 700]" in md.split("### Key ranges that differ", 1)[1]


@pytest.mark.parametrize("status", ["switched", "validated", "dry-run", "blocked", "failed", "in-progress"])
def test_markdown_never_prints_a_boolean(status: str) -> None:
    md = render_markdown(_report(status=status, epoch_after=2))
    assert not re.search(r"\b(True|False|None)\b", md)


def test_counts_that_differ_are_a_difference_even_with_equal_digests() -> None:
    c = CollectionReport(name="t", source_rows=10, target_rows=9, digests_equal=True)
    assert _table(render_markdown(_report(collections=[c]))) == {"t": ["10", "9", "✗ differs"]}


def test_chart_has_one_bar_per_phase_and_the_freeze_window() -> None:
    md = render_markdown(_report())
    svg = _svg(md)
    assert svg.startswith("<svg ") and svg.endswith("</svg>") and len(svg.encode()) < 10_000
    bars = re.findall(r'<rect class="phase" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>(\w+) ', svg)
    assert [name for _, _, name in bars] == list(PHASES)
    starts = [float(x) for x, _, _ in bars]
    assert starts == sorted(starts), "phases laid end to end"
    freeze = re.findall(r'<rect class="freeze" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert len(freeze) == 1 and "source frozen 2,346 ms" in svg
    assert float(freeze[0][0]) == starts[1], "the freeze window starts with the freeze phase"
    copy_width = float(bars[3][1])  # 1.8 s of the 2.3456 s window
    assert float(freeze[0][1]) == pytest.approx(copy_width * 2.3456 / 1.8, rel=0.01)
    assert 'fill="#ffffff"' in svg and 'fill="#222222"' in svg, "explicit background and ink for dark themes"
    assert phase_svg(_report()) == svg, "deterministic"


def test_no_chart_without_phases_and_none_when_the_terminal_asks() -> None:
    assert "data:image/svg+xml" not in render_markdown(_report(phase_seconds={}, freeze_ms=None))
    assert "data:image/svg+xml" not in render_markdown(_report(), chart=False)
    svg = phase_svg(_report(phase_seconds={"copy": 1.0, "catch-up": 0.5}, freeze_ms=300.0))
    assert svg.count('class="phase"') == 2 and svg.count('class="freeze"') == 1  # no freeze phase: the cutover, last


def test_html_page_is_self_contained_with_every_collection_expectation_and_note(tmp_path: Path) -> None:
    path = write_html(_report(), str(tmp_path / "out"))
    assert path.parent == (tmp_path / "out").resolve() and path.name == "migrate-src-to-dst-r1.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert not re.search(r"<script|<link|(src|href)\s*=\s*['\"]?https?:|@import|url\(", page, re.I)
    assert "Cutover blocked. The pointer stays on src" in page
    rows = re.findall(r"<tr class='(\w+)'><td>([\w_]+)</td><td class=n>([\d,]+)</td><td class=n>([\d,–]+)</td>"
                      r"<td>([^<]+)</td>", page)
    assert rows == [("equal", "orders", "1,234,567", "1,234,567", "✓ equal"),
                    ("differs", "order_items", "5,000", "4,999", "✗ differs"),
                    ("unmeasured", "customers", "300", "–", "– not measured")]
    for e in _report().expectations:
        assert f"<td>{e.suite}</td><td>{e.expectation}</td>" in page and e.detail in page
    assert page.count('<rect class="phase"') == len(PHASES) and page.count('<rect class="freeze"') == 1
    assert "the estimate is &lt;from 2 runs&gt; &amp; rough" in page
    assert not re.search(r"\b(True|False)\b", page)
