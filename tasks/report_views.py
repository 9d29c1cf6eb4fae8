"""What a migration report looks like at a glance: the per-collection verdict table (markdown and HTML), a timeline
of the phases with the source's freeze window marked (SVG, drawn here with the standard library), and the whole
report as one self-contained HTML page."""

from __future__ import annotations

import html

from shiftover.tasks.html_page import data_uri, page, svg_open, x_axis
from shiftover.tasks.report_model import CollectionReport, MigrationReport

EQUAL, DIFFERS, UNMEASURED = "✓ equal", "✗ differs", "– not measured"
_CLASS = {EQUAL: "equal", DIFFERS: "differs", UNMEASURED: "unmeasured"}
_BAR, _FREEZE = "#4e79a7", "#e15759"


def verdict(c: CollectionReport) -> str:
    """Differs when the digests or the counts disagree; equal only when the digests were compared and agree."""
    counted = c.target_rows is not None
    if c.digests_equal is False or (counted and c.target_rows != c.source_rows):
        return DIFFERS
    return EQUAL if c.digests_equal else UNMEASURED


def rows_text(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def collection_table(r: MigrationReport) -> list[str]:
    """The markdown table (four columns, narrow enough for the UI panel), then each collection's details."""
    lines = ["| collection | rows source | rows target | verdict |", "|---|---:|---:|:---|"]
    lines += [f"| {md_cell(c.name)} | {rows_text(c.source_rows)} | {rows_text(c.target_rows)} | {verdict(c)} |"
              for c in r.collections]
    if r.collections:
        lines += ["", "Details:", ""] + [f"- `{c.name}`: {details(c)}" for c in r.collections]
    return lines


def details(c: CollectionReport) -> str:
    parts = [c.path or "no copy path", f"{c.chunks:,} chunk(s)", f"digests {c.digest_method or 'not computed'}",
             f"{c.seconds:.2f} s"]
    return " · ".join(md_cell(p) for p in parts)


def _timeline(r: MigrationReport) -> tuple[list[tuple[str, float, float]], tuple[float, float] | None, float]:
    """Phases as (name, start, seconds) laid end to end; the freeze window as (start, seconds); the axis length.

    The freeze starts with the `freeze` phase (immediate); without one it is the cutover at the end."""
    phases, at = [], 0.0
    for name, seconds in r.phase_seconds.items():
        phases.append((name, at, max(0.0, seconds)))
        at += max(0.0, seconds)
    window = None
    if r.freeze_ms is not None:
        frozen = r.freeze_ms / 1000
        start = next((s for n, s, _ in phases if n == "freeze"), max(0.0, at - frozen))
        window = (start, frozen)
    end = max(at, window[0] + window[1] if window else 0.0)
    return phases, window, end or 1.0


def phase_svg(r: MigrationReport) -> str:
    """One bar per phase on a shared time axis, and the freeze window as a red band across them."""
    phases, window, end = _timeline(r)
    left, width, row, top = 90, 360, 20, 44
    height = top + row * max(1, len(phases)) + 28
    total = left + width + 80
    x = lambda s: left + width * s / end  # noqa: E731
    out = svg_open(total, height, "Time per phase (s)")
    if window:
        out.append(f'<rect x="{left}" y="26" width="10" height="10" fill="{_FREEZE}" fill-opacity="0.3" '
                   f'stroke="{_FREEZE}"/><text x="{left + 14}" y="35">source frozen {r.freeze_ms:,.0f} ms</text>')
        w = max(1.0, x(window[0] + window[1]) - x(window[0]))
        out.append(f'<rect class="freeze" x="{x(window[0]):.1f}" y="{top - 4}" width="{w:.1f}" '
                   f'height="{row * max(1, len(phases)) + 8}" fill="{_FREEZE}" fill-opacity="0.3" stroke="{_FREEZE}">'
                   f'<title>source frozen {r.freeze_ms:,.0f} ms</title></rect>')
    for i, (name, start, seconds) in enumerate(phases):
        y, label = top + i * row, html.escape(name)
        w = max(1.0, x(start + seconds) - x(start))
        out.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{label}</text>'
                   f'<rect class="phase" x="{x(start):.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                   f'fill="{_BAR}"><title>{label} {seconds:.2f} s</title></rect>'
                   f'<text x="{x(start) + w + 4:.1f}" y="{y + 12}">{seconds:.2f}</text>')
    axis = top + row * max(1, len(phases)) + 8
    out.append(x_axis(left, width, axis, "0", f"{end:.2f} s") + "</svg>")
    return "".join(out)


def phase_chart_markdown(r: MigrationReport) -> list[str]:
    return [f"![time per phase]({data_uri(phase_svg(r))})"] if r.phase_seconds else []


def report_html(r: MigrationReport, verdict_text: str) -> str:
    """The whole report as one page: verdict, figures, the table, the chart, the expectations, the notes."""
    e = html.escape
    body = [f"<p><b>{e(verdict_text)}</b></p>",
            f"<p>Run {e(r.run_id)}, strategy {e(r.strategy)}, started {r.started:%Y-%m-%d %H:%M:%S} UTC, "
            f"{r.seconds:.1f} s; {r.rows:,} records in {len(r.collections):,} collection(s).</p>"]
    if r.freeze_ms is not None:
        engine = ", ".join(r.frozen_engine) or "none (router-level only)"
        body.append(f"<p>Source write freeze: {r.freeze_ms:,.0f} ms; enforced in the engine on: {e(engine)}.</p>")
    if r.error:
        body.append(f"<p class='failed'><b>Error:</b> {e(r.error)}</p>")
    body.append("<h2>Is my data all there?</h2><table id='collections'><tr><th>collection</th><th>rows source</th>"
                "<th>rows target</th><th>verdict</th><th>details</th></tr>")
    for c in r.collections:
        v = verdict(c)
        ranges = f"<br>key ranges that differ: {e(', '.join(c.mismatched_ranges))}" if c.mismatched_ranges else ""
        body.append(f"<tr class='{_CLASS[v]}'><td>{e(c.name)}</td><td class=n>{rows_text(c.source_rows)}</td>"
                    f"<td class=n>{rows_text(c.target_rows)}</td><td>{v}</td><td>{e(details(c))}{ranges}</td></tr>")
    body.append("</table>")
    if r.phase_seconds:
        body.append(f"<h2>Time per phase</h2><div class='charts'>{phase_svg(r)}</div>")
    if r.expectations:
        body.append("<h2>Expectations (Great Expectations)</h2><table id='expectations'><tr><th>suite</th>"
                    "<th>expectation (what it checked)</th><th>result</th><th>detail</th></tr>")
        body += [f"<tr class='{'passed' if x.success else 'failed'}'><td>{e(x.suite)}</td><td>{e(x.expectation)}</td>"
                 f"<td>{'pass' if x.success else 'FAIL'}</td><td>{e(x.detail)}</td></tr>" for x in r.expectations]
        body.append("</table>")
    if r.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
    return page(f"Migration {r.source} → {r.target} ({r.strategy})", body)
