"""A PostgreSQL column read in a *form* (adapters/postgres/types.py decides which; `Column.native_def` records it): the
SQLAlchemy type that reads it through the form's SQL expression and writes it back by a cast into the native type,
and its values, from the form's result to canonical and back to the text PostgreSQL reads."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from shiftover.adapters import canonical
from shiftover.adapters.base import Column
from shiftover.adapters.postgres.types import definition_of
from shiftover.adapters.sql import NamedType


# -- the SQLAlchemy type of a column read in a form --------------------------------------------------------------------
class Formed(sa.types.UserDefinedType):
    """A column read through its form's SQL expression and written back by casting into the native type."""

    cache_ok = True

    def __init__(self, native: str, form: str, element: str | None = None) -> None:
        self.native, self.form, self.element = native, form, element

    def get_col_spec(self, **kw: Any) -> str:
        return self.native

    def column_expression(self, colexpr: Any) -> Any:
        if self.form == "money":
            return sa.cast(colexpr, sa.Numeric)
        if self.form == "oid":
            return sa.cast(colexpr, sa.BigInteger)
        if self.form in ("composite", "hstore"):
            return sa.cast(sa.func.to_json(colexpr), NamedType("text"))
        if self.form == "array" and self.element == "decimal":  # numeric elements as their exact text
            return sa.cast(sa.func.array_to_json(sa.cast(colexpr, NamedType("text[]"))), NamedType("text"))
        if self.form == "array":
            return sa.cast(sa.func.array_to_json(colexpr), NamedType("text"))
        return sa.cast(colexpr, NamedType("text"))

    def bind_expression(self, bindvalue: Any) -> Any:
        if self.form == "money":
            return sa.cast(sa.cast(bindvalue, NamedType("numeric")), NamedType(self.native))
        if self.form == "oid":
            return sa.cast(sa.cast(bindvalue, NamedType("bigint")), NamedType(self.native))
        if self.form == "composite":
            return sa.func.json_populate_record(sa.cast(sa.null(), NamedType(self.native)), sa.cast(bindvalue,
                                                                                             NamedType("json")))
        return sa.cast(sa.cast(bindvalue, NamedType("text")), NamedType(self.native))




# -- values: from the form's result to canonical, and back to the text PostgreSQL reads --------------------------------
def load(col: Column, value: Any) -> Any:
    d = definition_of(col.native_def)
    form = d.get("form")
    if form in ("composite", "hstore", "array"):  # numbers as doubles, as psycopg reads json
        return json.loads(value) if isinstance(value, str) else value
    if form == "range":
        return _range_load(value, d.get("subtype") == "number")
    if form == "geometric":
        return _geometric_load(col.native.split(":", 1)[1], value)  # type: ignore[union-attr]
    return value


def dump(col: Column, value: Any) -> Any:
    d = definition_of(col.native_def)
    form = d.get("form")
    if form == "composite":
        return json.dumps(canonical.jsonable(value), ensure_ascii=False)
    if form == "hstore":
        return _hstore_text(value)
    if form == "array":
        return _array_text(value, d)
    if form == "range":
        return _range_text(value)
    if form == "geometric":
        return _geometric_text(col.native.split(":", 1)[1], value)  # type: ignore[union-attr]
    if form in ("money", "oid"):
        return value
    return value if isinstance(value, str) else _scalar_text(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return canonical.number_text(value)
    if isinstance(value, (dict, list)):
        return json.dumps(canonical.jsonable(value), ensure_ascii=False)
    return str(canonical.jsonable(value))


def _array_text(value: Any, d: dict[str, Any]) -> str:
    """A PostgreSQL array literal of a JSON array as `array_to_json` gave it: a list is a dimension unless the elements
    are json/jsonb; a composite's fields go in the recorded order."""
    element, delimiter = d.get("element"), d.get("delimiter", ",")

    def item(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, list) and element != "json":
            return "{" + delimiter.join(item(x) for x in v) + "}"
        if isinstance(v, dict) and element == "composite":
            return _quote(_record_text(v, [f[0] for f in d.get("fields") or []]))
        if isinstance(v, dict) and element == "hstore":
            return _quote(_hstore_text(v))
        return _quote(_scalar_text(v))

    return "{" + delimiter.join(item(v) for v in value) + "}"


def _record_text(value: dict[str, Any], fields: Sequence[str]) -> str:
    def field_text(v: Any) -> str:
        if v is None:
            return ""
        return '"' + _scalar_text(v).replace("\\", "\\\\").replace('"', '""') + '"'

    return "(" + ",".join(field_text(value.get(f)) for f in (fields or list(value))) + ")"


def _hstore_text(value: dict[str, Any]) -> str:
    return ", ".join(f"{_quote(str(k))}=>{'NULL' if v is None else _quote(str(v))}" for k, v in value.items())


def _range_tokens(body: str) -> list[str | None]:
    out: list[str | None] = []
    i, n = 0, len(body)
    while True:
        if i < n and body[i] == '"':
            buf, i = [], i + 1
            while i < n:
                ch = body[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(body[i + 1])
                    i += 2
                elif ch == '"' and body[i + 1:i + 2] == '"':
                    buf.append('"')
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    buf.append(ch)
                    i += 1
            out.append("".join(buf))
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            out.append(body[i:j] or None)
            i = j
        if i >= n or len(out) == 2:
            return out
        i += 1  # the comma


def _range_load(text: str, numeric: bool) -> dict[str, Any]:
    if text == "empty":
        return {"empty": True}
    lower, upper = _range_tokens(text[1:-1])

    def bound(v: str | None) -> Any:
        if v is None or not numeric:
            return v
        number = Decimal(v)
        return int(number) if number == number.to_integral_value() and "." not in v and "e" not in v.lower() \
            else number

    return {"lower": bound(lower), "upper": bound(upper), "bounds": text[0] + text[-1]}


def _range_text(value: dict[str, Any]) -> str:
    if value.get("empty"):
        return "empty"
    lo, hi = value.get("lower"), value.get("upper")
    return (value["bounds"][0] + ("" if lo is None else _quote(_scalar_text(lo))) + "," +
            ("" if hi is None else _quote(_scalar_text(hi))) + value["bounds"][1])


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|Infinity|NaN)")


def _geometric_load(native: str, text: str) -> Any:
    nums = [float(x) for x in _NUMBER.findall(text)]
    pairs = [{"x": nums[i], "y": nums[i + 1]} for i in range(0, len(nums) - 1, 2)]  # no array in an array: Firestore
    if native == "point":
        return {"x": nums[0], "y": nums[1]}
    if native == "circle":
        return {"x": nums[0], "y": nums[1], "r": nums[2]}
    if native == "line":
        return {"a": nums[0], "b": nums[1], "c": nums[2]}
    if native == "path":
        return {"closed": text.startswith("(("), "points": pairs}
    return pairs  # lseg, box, polygon


def _geometric_text(native: str, value: Any) -> str:
    def pt(p: dict[str, Any]) -> str:
        return f"({_scalar_text(p['x'])},{_scalar_text(p['y'])})"

    if native == "point":
        return pt(value)
    if native == "circle":
        return f"<{pt(value)},{_scalar_text(value['r'])}>"
    if native == "line":
        return "{" + ",".join(_scalar_text(value[k]) for k in "abc") + "}"
    if native == "path":
        inner = ",".join(pt(p) for p in value["points"])
        return f"({inner})" if value["closed"] else f"[{inner}]"
    inner = ",".join(pt(p) for p in value)
    return f"[{inner}]" if native == "lseg" else inner if native == "box" else f"({inner})"
