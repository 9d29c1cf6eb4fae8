"""How the CLI lays a report out in a terminal of any width: a table when every name fits on one line, else one
block per row (a vertical layout), so a provider, collection or column name is never cut (`…`) or split across
lines. Verdicts are coloured the same way everywhere (pass green, fail red, degraded yellow) and booleans are words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

Kind = Literal["name", "short", "text"]
_GREEN = ("pass", "passed", "healthy", "succeeded", "switched", "validated", "ok", "equal", "✓", "yes", "cut",
          "completed", "released", "live")
_RED = ("fail", "failed", "down", "blocked", "differs", "✗", "error", "superseded", "rejected", "crashed",
        "unhealthy", "no")
_YELLOW = ("degraded", "skipped", "running", "in-progress", "dry-run", "dry", "pending", "unknown", "never",
           "frozen", "rolled-back", "paused", "warning", "stale", "copying", "interrupted")


def word(value: object) -> str:
    """A value as a report shows it: booleans as yes/no, None as -, anything else as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def colour_of(value: object) -> str | None:
    """green, red or yellow by the value's first word (pass/fail/degraded and their kin); None for anything else."""
    first = word(value).strip().split(" ", 1)[0].rstrip(":,.").lower()
    return "green" if first in _GREEN else "red" if first in _RED else "yellow" if first in _YELLOW else None


def verdict(value: object) -> Text:
    """The value as words, coloured by colour_of."""
    return Text(word(value), style=colour_of(value) or "")


@dataclass(frozen=True)
class Col:
    """A column. `name` cells (providers, collections, columns) are never wrapped or cut; `short` ones are not
    wrapped either; `text` ones wrap at spaces."""

    header: str
    kind: Kind = "short"
    justify: Literal["left", "right"] = "left"
    coloured: bool = False


def _cell(value: object, col: Col) -> Text:
    if isinstance(value, Text):
        return value
    return verdict(value) if col.coloured else Text(word(value))


def _needed(col: Col, cells: Sequence[Text]) -> int:
    if col.kind == "text":
        words = [w for c in cells for w in c.plain.split()] + col.header.split()
        return max((Text(w).cell_len for w in words), default=1)
    return max([Text(col.header).cell_len] + [c.cell_len for c in cells])


def fits(cols: Sequence[Col], rows: Sequence[Sequence[Text]], width: int) -> bool:
    """True when the table fits `width` with every name and short cell on one line (borders and padding counted)."""
    needed = [_needed(c, [r[i] for r in rows]) for i, c in enumerate(cols)]
    return sum(n + 2 for n in needed) + len(cols) + 1 <= width


def show(console: Console, title: str, cols: Sequence[Col], rows: Sequence[Sequence[object]],
         style: str | None = None) -> None:
    """Print the rows as a table when it fits the console's width, else one block per row headed by its first cell."""
    cells = [[_cell(v, c) for v, c in zip(row, cols, strict=True)] for row in rows]
    if fits(cols, cells, console.width):
        table = Table(title=title, style=style or "none", title_justify="left")
        for c in cols:
            table.add_column(c.header, justify=c.justify, no_wrap=c.kind != "text",
                             overflow="fold" if c.kind == "text" else "ellipsis")
        for row in cells:
            table.add_row(*row)
        console.print(table)
        return
    console.print(Text(title, style="bold" + (f" {style}" if style else "")))
    label = max(Text(c.header).cell_len for c in cols[1:]) if len(cols) > 1 else 0
    for row in cells:
        head = row[0].copy()
        head.stylize("bold")
        console.print(Text("  ") + head, soft_wrap=True)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=3)
        grid.add_column(no_wrap=True, style="dim", min_width=label)
        grid.add_column(overflow="fold")
        for c, v in zip(cols[1:], row[1:], strict=True):
            grid.add_row("", c.header, v)
        console.print(grid)
