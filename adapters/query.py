"""What a query means, the same on every provider: filters, the order of NULLs, offset and limit.

Each adapter pushes what its engine can do into the engine (SQL: SQLAlchemy expressions; MongoDB: query operators;
Firestore: where clauses) and applies the rest here, so a query returns the same records everywhere:

- `eq`/`ne`/`lt`/`lte`/`gt`/`gte`/`in`/`like`/`ilike` never match a record whose field is NULL or missing (SQL's
  rule); `eq None` and `is None` match exactly those, `ne None` and `is_not None` the others.
- `like` / `ilike` take SQL LIKE patterns: `%` any run of characters, `_` one character, `\\` escapes the next
  character. `like` is case-sensitive; `ilike` folds each letter's case (Unicode simple case folding per character).
- Ordering puts NULLs first ascending and last descending (NULL sorts as the smallest value), as SQLite, MongoDB and
  Firestore do; the PostgreSQL adapters say NULLS FIRST / NULLS LAST to match.
- `offset` skips that many records of the ordered result, then `limit` keeps at most that many.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from shiftover.adapters.errors import InvalidRequest

Record = dict[str, Any]
Op = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "is_not"]
OPS: tuple[str, ...] = get_args(Op)
Order = Sequence[tuple[str, Literal["asc", "desc"]]]


@dataclass(frozen=True)
class Filter:
    """`Filter("qty", "gte", 2)`; `Filter("name", "is", None)`; `Filter("email", "ilike", "%@example.com")`."""

    field: str
    op: Op
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InvalidRequest(f"unknown filter operator {self.op!r} on {self.field!r}",
                                 hint=f"use one of {', '.join(OPS)}")
        if self.op in ("is", "is_not") and self.value is not None:
            raise InvalidRequest(f"{self.op!r} compares {self.field!r} with None only, not {self.value!r}",
                                 hint=f"write Filter({self.field!r}, {self.op!r}, None), or use eq/ne for values")
        if self.op == "in" and (isinstance(self.value, (str, bytes)) or not isinstance(self.value, Sequence)):
            raise InvalidRequest(f"'in' on {self.field!r} takes a list of values, not {self.value!r}",
                                 hint=f"write Filter({self.field!r}, 'in', [a, b])")
        if self.op in ("like", "ilike") and not isinstance(self.value, str):
            raise InvalidRequest(f"{self.op!r} on {self.field!r} takes a pattern string, not {self.value!r}",
                                 hint="for example '%@example.com' (% any characters, _ one character)")

    @property
    def null_test(self) -> bool | None:
        """True for "field is NULL", False for "field is not NULL", None for a comparison with a value."""
        if self.op == "is" or (self.op == "eq" and self.value is None):
            return True
        if self.op == "is_not" or (self.op == "ne" and self.value is None):
            return False
        return None


def as_filters(where: Sequence[Filter | tuple[str, str, Any]]) -> list[Filter]:
    """Filters given as Filter objects or as (field, op, value) tuples."""
    if isinstance(where, (str, Filter)) or (isinstance(where, tuple) and where and isinstance(where[0], str)):
        raise InvalidRequest(f"where takes a list of filters, not {where!r}",
                             hint="wrap it in a list: [(field, op, value)]")
    out = []
    for w in where:
        if isinstance(w, Filter):
            out.append(w)
        elif isinstance(w, (tuple, list)) and len(w) == 3 and isinstance(w[0], str):
            out.append(Filter(w[0], w[1], w[2]))  # type: ignore[arg-type]  # checked in __post_init__
        else:
            raise InvalidRequest(f"a filter is Filter(field, op, value) or a (field, op, value) tuple, not {w!r}",
                                 hint="for example ('status', 'eq', 'paid')")
    return out


def like_regex(pattern: str, *, fold: bool) -> str:
    """A LIKE pattern as an anchored regular expression; with `fold` every cased letter becomes `[xX]`, so the regex
    engine needs no case-insensitive flag (and MongoDB, Python and SQLite GLOB fold alike)."""
    out, escaped = [], False
    for ch in pattern:
        if not escaped and ch == "\\":
            escaped = True
            continue
        if not escaped and ch == "%":
            out.append(".*")
        elif not escaped and ch == "_":
            out.append(".")
        elif fold and ch.lower() != ch.upper():
            out.append("[" + re.escape(ch.lower()) + re.escape(ch.upper()) + "]")
        else:
            out.append(re.escape(ch))
        escaped = False
    return "^" + "".join(out) + "$"


def like_glob(pattern: str, *, fold: bool) -> str:
    """A LIKE pattern as an SQLite GLOB pattern (GLOB is case-sensitive; folding is done with `[xX]` classes)."""
    out, escaped = [], False
    for ch in pattern:
        if not escaped and ch == "\\":
            escaped = True
            continue
        if not escaped and ch in "%_":
            out.append("*" if ch == "%" else "?")
        elif fold and ch.lower() != ch.upper():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        elif ch in "*?[]":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
        escaped = False
    return "".join(out)


def _compare(v: Any, f: Filter) -> bool:
    op = f.op
    if op == "eq":
        return bool(v == f.value)
    if op == "ne":
        return bool(v != f.value)
    if op == "in":
        return v in [x for x in f.value if x is not None]
    if op in ("like", "ilike"):
        return isinstance(v, str) and re.fullmatch(like_regex(f.value, fold=op == "ilike"), v, re.S) is not None
    try:
        return bool({"lt": v < f.value, "lte": v <= f.value, "gt": v > f.value, "gte": v >= f.value}[op])
    except TypeError:  # values of another type never match a range
        return False


def matches(record: Record, filters: Sequence[Filter]) -> bool:
    for f in filters:
        v = record.get(f.field)
        null = f.null_test
        if null is not None:
            if (v is None) != null:
                return False
        elif v is None or not _compare(v, f):
            return False
    return True


def ordered(rows: list[Record], order_by: Order) -> list[Record]:
    """Sorted by `order_by`, NULLs first ascending and last descending; a stable sort keeps ties in input order."""
    for field_name, direction in reversed(order_by):
        rows.sort(key=lambda r: (r.get(field_name) is not None, r.get(field_name)), reverse=direction == "desc")
    return rows


def window(rows: list[Record], offset: int | None, limit: int | None) -> list[Record]:
    start = offset or 0
    return rows[start:start + limit] if limit is not None else rows[start:]


def check_window(offset: int | None, limit: int | None) -> None:
    for name, value in (("offset", offset), ("limit", limit)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidRequest(f"{name} must be a whole number ≥ 0, not {value!r}", hint=f"pass {name}=10, say")
