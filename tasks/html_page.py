"""What every self-contained report shares (test suite, migration, health sweep): the HTML page shell (one style
sheet, no external script, style or font), and the pieces of its SVG charts — one palette, a panel with its own
background, legend and axis — so a chart reads the same on the Prefect UI's light and dark themes. Markdown shows the
charts as data-URI images, the form the UI renders."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fff}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed,.equal{background:#e7f6e7}.failed,.differs{background:#fde2e2}.skipped,.unmeasured{background:#f3f3f3;color:#666}
td.n{text-align:right}.charts svg{margin:0 1rem 1rem 0}"""

# An image on a dark theme keeps its own background: the panel is light and opaque, with a mid-grey edge that shows on
# both themes, and all text is dark ink on it (never the page's colour, never pure black or white).
INK, MUTED, PAPER, EDGE, GRID = "#222222", "#555555", "#ffffff", "#8a8a8a", "#bbbbbb"
SERIES = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f", "#d37295")


def page(title: str, body: list[str]) -> str:
    """A whole HTML document: the title as <title> and <h1>, then the body's fragments (already escaped)."""
    t = html.escape(title)
    head = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{t}</title>"
            f"<style>{CSS}</style></head><body>")
    return "\n".join([head, f"<h1>{t}</h1>", *body, "</body></html>\n"])


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def svg_open(width: int, height: int, title: str) -> list[str]:
    """The start of a chart: the root element (dark ink as the default fill), the opaque panel, the title."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" font-family="sans-serif" font-size="12" fill="{INK}">',
            f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6" fill="{PAPER}" stroke="{EDGE}"/>',
            f'<text x="10" y="19" font-size="14" font-weight="bold">{html.escape(title)}</text>']


def legend(x: float, y: float, items: Sequence[tuple[str, str]], step: float) -> str:
    """A row of (label, colour) swatches from (x, y), one every `step` pixels."""
    return "".join(f'<rect x="{x + i * step:.0f}" y="{y}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + i * step + 14:.0f}" y="{y + 9}">{html.escape(label)}</text>'
                   for i, (label, colour) in enumerate(items))


def x_axis(left: float, width: float, y: float, first: str, last: str) -> str:
    """A horizontal axis line with its first and last labels under it."""
    return (f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="{GRID}"/>'
            f'<text x="{left}" y="{y + 15}" fill="{MUTED}">{html.escape(first)}</text>'
            f'<text x="{left + width}" y="{y + 15}" text-anchor="end" fill="{MUTED}">{html.escape(last)}</text>')
