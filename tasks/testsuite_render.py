"""The test-suite report as markdown (artifact), table rows (artifact), a self-contained HTML page, and SVG latency
charts drawn here (one per provider, a group of p50/p95/p99 bars per operation). The markdown shows each chart as a
data-URI image, the form the Prefect UI renders; the HTML embeds the SVG inline."""

from __future__ import annotations

import html
from collections.abc import Sequence

from shiftover.tasks.html_page import data_uri, legend, page, svg_open, x_axis
from shiftover.tasks.testsuite_model import CATEGORIES, CategoryOutcome, OperationStats, TestSuiteReport

_COLOURS = (("p50", "#4e79a7"), ("p95", "#f28e2b"), ("p99", "#e15759"))


def cell(o: CategoryOutcome | None) -> str:
    """`passed 7/7`, `failed 5/7`, `skipped: reason` (the same words in every rendering)."""
    if o is None:
        return "not run"
    ran = [t for t in o.tests if t.status != "skipped"]
    if o.status == "skipped":
        return f"skipped: {o.reason or (o.tests[0].detail if o.tests else '')}"
    passed = sum(t.status == "passed" for t in ran)
    extra = f" ({len(o.tests) - len(ran)} skipped)" if len(o.tests) != len(ran) else ""
    return f"{o.status} {passed}/{len(ran)}{extra}"


def table_rows(r: TestSuiteReport) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for p in r.providers:
        row: dict[str, object] = {"provider": p}
        for c in CATEGORIES:
            row[c] = cell(r.outcome(p, c)) if c in r.categories else "not selected"
        outcomes = [o for o in r.outcomes if o.provider == p]
        row["failed_tests"] = sum(t.status == "failed" for o in outcomes for t in o.tests)
        rows.append(row)
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


MATRIX_LEGEND = "✓ passed, ✗ failed (tests passed/run), – [n] skipped (note n below), · not run"


def _short(o: CategoryOutcome | None, notes: list[str]) -> str:
    """A matrix cell of a few characters; a skip's reason goes to `notes` (shared by cells with the same reason)."""
    if o is None:
        return "·"
    if o.status == "skipped":
        reason = cell(o).removeprefix("skipped: ")
        if reason not in notes:
            notes.append(reason)
        return f"– [{notes.index(reason) + 1}]"
    ran = [t for t in o.tests if t.status != "skipped"]
    passed = sum(t.status == "passed" for t in ran)
    extra = f" +{len(o.tests) - len(ran)} skipped" if len(o.tests) != len(ran) else ""
    return f"**✗ {passed}/{len(ran)}{extra}**" if o.status == "failed" else f"✓ {passed}/{len(ran)}{extra}"


def matrix_markdown(r: TestSuiteReport) -> list[str]:
    """Provider × category with short cells, so the table fits the artifact panel (~100 characters); the legend and
    the numbered skip reasons follow it in full words."""
    notes: list[str] = []
    lines = ["| provider | " + " | ".join(r.categories) + " |", "|---|" + ":---:|" * len(r.categories)]
    lines += [f"| {_md(p)} | " + " | ".join(_short(r.outcome(p, c), notes) for c in r.categories) + " |"
              for p in r.providers]
    lines += ["", MATRIX_LEGEND]
    if notes:
        lines += [""] + [f"{i}. {_md(n)}" for i, n in enumerate(notes, 1)]
    return lines


def latency_peak(perf: Sequence[CategoryOutcome]) -> float:
    """The slowest p99 of every provider: one scale for all the charts, so bars compare across providers."""
    return max((op.p99_ms for o in perf for op in o.operations), default=1.0) or 1.0


def latency_svg(provider: str, ops: Sequence[OperationStats], peak: float | None = None) -> str:
    """Horizontal grouped bars, milliseconds on a linear axis from 0 to `peak` (default: this provider's slowest
    p99; the report passes `latency_peak` so every provider's chart has the same axis)."""
    row_h, bar_h, left, width = 54, 14, 150, 420
    top = 46
    height = top + row_h * len(ops) + 30
    peak = peak or max((o.p99_ms for o in ops), default=1.0) or 1.0
    parts = svg_open(left + width + 90, height, f"Latency on {provider} (ms)")
    parts.append(legend(left, 28, [(label, colour) for label, colour in _COLOURS], 70))
    for i, o in enumerate(ops):
        y = top + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 26}" text-anchor="end">{html.escape(o.operation)}</text>')
        for j, (label, colour) in enumerate(_COLOURS):
            value = getattr(o, f"{label}_ms")
            w = max(1.0, width * min(value, peak) / peak)
            parts.append(f'<rect x="{left}" y="{y + j * (bar_h + 2)}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{colour}"><title>{html.escape(o.operation)} {label} {value:.3f} ms</title></rect>'
                         f'<text x="{left + w + 4:.1f}" y="{y + j * (bar_h + 2) + 11}">{value:.2f}</text>')
    axis_y = top + row_h * len(ops)
    parts.append(x_axis(left, width, axis_y, "0", f"{peak:.2f} ms") + "</svg>")
    return "".join(parts)


def _perf(r: TestSuiteReport) -> list[CategoryOutcome]:
    return [o for o in r.outcomes if o.category == "performance" and o.operations]


def render_markdown(r: TestSuiteReport) -> str:
    s = r.summary
    verdict = "All tests passed." if s.failed == 0 else f"**{s.failed} test(s) failed.**"
    lines = [f"# Test suite {r.id}", "", verdict, "",
             f"- tests: {s.total} — {s.passed} passed, {s.failed} failed, {s.skipped} skipped; "
             f"success rate {s.success_rate:.1%} (passed of those that ran)",
             f"- providers: {', '.join(r.providers)}; data size {r.data_size}; {r.concurrent_users} concurrent users "
             f"for {r.duration_s:g} s; {r.seconds:.1f} s in all",
             f"- started {r.started:%Y-%m-%d %H:%M:%S} UTC", "",
             "## Provider × category", ""] + matrix_markdown(r)
    perf = _perf(r)
    if perf:
        lines += ["", "## Performance", "",
                  "| provider | operation | calls | p50 ms | p95 ms | p99 ms | ops/s | records/s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for o in perf:
            for op in o.operations:
                lines.append(f"| {o.provider} | {op.operation} | {op.samples} | {op.p50_ms:.2f} | {op.p95_ms:.2f} | "
                             f"{op.p99_ms:.2f} | {op.ops_per_s:,.0f} | {op.records_per_s:,.0f} |")
        lines += ["", "| provider | batch efficiency | process RSS MB | RSS change MB |", "|---|---:|---:|---:|"]
        lines += [f"| {o.provider} | {o.batch_efficiency}× | {o.memory_rss_mb} | {o.memory_delta_mb:+} |"
                  for o in perf]
        peak = latency_peak(perf)
        lines += ["", f"The latency charts share one axis, 0 to {peak:.2f} ms (the slowest p99 of all), so bars"
                  " compare across providers."]
        for o in perf:
            lines += ["", f"![latency {o.provider}]({data_uri(latency_svg(o.provider, o.operations, peak))})"]
    loads = [o.load for o in r.outcomes if o.category == "load" and o.load]
    if loads:
        lines += ["", "## Load", "",
                  "| provider | users | seconds | operations | ops/s | errors | error rate | p95 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {x.provider} | {x.users} | {x.seconds} | {x.operations:,} | {x.ops_per_s:,.0f} | {x.errors} | "
                  f"{x.error_rate:.2%} | {x.p95_ms} |" for x in loads]
    failed = [t for o in r.outcomes for t in o.tests if t.status == "failed"]
    if failed:
        lines += ["", "## Failed tests", "", "| provider | category | test | error |", "|---|---|---|---|"]
        lines += [f"| {t.provider} | {t.category} | {_md(t.name)} | {_md(t.error or t.detail)} |" for t in failed]
    for title, items in (("Recommendations", r.recommendations), ("Warnings", r.warnings), ("Errors", r.errors)):
        lines += ["", f"## {title}", ""] + ([f"- {_md(x)}" for x in items] or ["- none"])
    if r.files:
        lines += ["", "## Files", ""] + [f"- {k.upper()}: `{v}`" for k, v in r.files.items()]
    return "\n".join(lines) + "\n"


def render_html(r: TestSuiteReport) -> str:
    e = html.escape
    s = r.summary
    out = [f"<p><b>{s.passed} passed, {s.failed} failed, {s.skipped} skipped</b> of {s.total} tests — success rate "
           f"{s.success_rate:.1%}. Providers: {e(', '.join(r.providers))}; data size {e(r.data_size)}; "
           f"{r.concurrent_users} concurrent users for {r.duration_s:g} s; started {r.started:%Y-%m-%d %H:%M:%S} UTC, "
           f"{r.seconds:.1f} s.</p>",
           "<h2>Provider × category</h2><table id='matrix'><tr><th>provider</th>"
           + "".join(f"<th>{e(c)}</th>" for c in r.categories) + "</tr>"]
    for p in r.providers:
        out.append(f"<tr><th>{e(p)}</th>")
        for c in r.categories:
            o = r.outcome(p, c)
            out.append(f"<td class='{o.status if o else ''}'>{e(cell(o))}</td>")
        out.append("</tr>")
    out.append("</table>")
    perf = _perf(r)
    if perf:
        out.append("<h2>Latency</h2><div class='charts'>")
        out += [latency_svg(o.provider, o.operations, latency_peak(perf)) for o in perf]
        out.append("</div><table><tr><th>provider</th><th>operation</th><th>calls</th><th>p50 ms</th><th>p95 ms</th>"
                   "<th>p99 ms</th><th>ops/s</th><th>records/s</th></tr>")
        for o in perf:
            for op in o.operations:
                out.append(f"<tr><td>{e(o.provider)}</td><td>{e(op.operation)}</td><td class=n>{op.samples}</td>"
                           f"<td class=n>{op.p50_ms:.2f}</td><td class=n>{op.p95_ms:.2f}</td>"
                           f"<td class=n>{op.p99_ms:.2f}</td><td class=n>{op.ops_per_s:,.0f}</td>"
                           f"<td class=n>{op.records_per_s:,.0f}</td></tr>")
        out.append("</table><table><tr><th>provider</th><th>batch efficiency</th><th>process RSS MB</th>"
                   "<th>RSS change MB</th></tr>")
        out += [f"<tr><td>{e(o.provider)}</td><td class=n>{o.batch_efficiency}×</td><td class=n>{o.memory_rss_mb}"
                f"</td><td class=n>{o.memory_delta_mb:+}</td></tr>" for o in perf]
        out.append("</table>")
    loads = [o.load for o in r.outcomes if o.category == "load" and o.load]
    if loads:
        out.append("<h2>Load</h2><table><tr><th>provider</th><th>users</th><th>seconds</th><th>operations</th>"
                   "<th>ops/s</th><th>errors</th><th>error rate</th><th>p95 ms</th></tr>")
        out += [f"<tr><td>{e(x.provider)}</td><td class=n>{x.users}</td><td class=n>{x.seconds}</td>"
                f"<td class=n>{x.operations:,}</td><td class=n>{x.ops_per_s:,.0f}</td><td class=n>{x.errors}</td>"
                f"<td class=n>{x.error_rate:.2%}</td><td class=n>{x.p95_ms}</td></tr>" for x in loads]
        out.append("</table>")
    out.append("<h2>Tests</h2><table id='tests'><tr><th>provider</th><th>category</th><th>test</th><th>result</th>"
               "<th>seconds</th><th>detail</th></tr>")
    for o in r.outcomes:
        for t in o.tests:
            out.append(f"<tr class='{t.status}'><td>{e(t.provider)}</td><td>{e(t.category)}</td><td>{e(t.name)}</td>"
                       f"<td>{t.status}</td><td class=n>{t.seconds:.3f}</td><td>{e(t.error or t.detail)}</td></tr>")
    out.append("</table>")
    for title, items in (("Recommendations", r.recommendations), ("Warnings", r.warnings), ("Errors", r.errors)):
        out.append(f"<h2>{title}</h2><ul>" + ("".join(f"<li>{e(x)}</li>" for x in items) or "<li>none</li>")
                   + "</ul>")
    return page(f"Shiftover test suite {r.id}", out)
