"""The page shell every self-contained HTML report shares (test suite, migration): one style sheet, no external
script, style or font, and SVG charts as data URIs where markdown shows them."""

from __future__ import annotations

import base64
import html

CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fff}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed,.equal{background:#e7f6e7}.failed,.differs{background:#fde2e2}.skipped,.unmeasured{background:#f3f3f3;color:#666}
td.n{text-align:right}.charts svg{margin:0 1rem 1rem 0}"""


def page(title: str, body: list[str]) -> str:
    """A whole HTML document: the title as <title> and <h1>, then the body's fragments (already escaped)."""
    t = html.escape(title)
    head = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{t}</title>"
            f"<style>{CSS}</style></head><body>")
    return "\n".join([head, f"<h1>{t}</h1>", *body, "</body></html>\n"])


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
