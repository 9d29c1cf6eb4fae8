"""The canonical record form and its deterministic digest.

A record is a dict of JSON-like values plus `Decimal`, UTC-aware `datetime`, `date` and `bytes`. Each adapter maps its
engine's types to and from this form; `encode()` turns a record into bytes that are the same on every provider, so a
record hashes to the same value wherever it lives. Numbers compare by value (1, 1.0 and Decimal("1.00") encode alike),
timestamps by the UTC instant to the microsecond, maps by sorted keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
from decimal import Context, Decimal
from typing import Any, Literal, cast

from shiftover.adapters.errors import UnsupportedValue

CanonicalType = Literal["integer", "decimal", "float", "text", "boolean", "timestamp", "date", "json", "bytes",
                        "uuid"]

UTC = dt.timezone.utc
_HASH_HEX = 15  # 60 bits per record; sums of them cannot collide by accident on realistic tables


def number_text(value: int | float | Decimal) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        value = Decimal(repr(value))
    elif isinstance(value, int):
        return str(value)
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    exact = Context(prec=max(28, len(value.as_tuple().digits)))  # normalize() must never round
    return format(value.normalize(exact), "f")


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp_text(value: dt.datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> Any:
    """A JSON-serialisable, type-tagged form of one canonical value."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return "n:" + number_text(value)
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, dt.datetime):
        return "t:" + timestamp_text(value)
    if isinstance(value, dt.date):
        return "d:" + value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "b:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return "s:" + str(value)


def type_of(value: Any) -> str:
    """The canonical type name of one value ("null" for None, "json" for maps and lists)."""
    if value is None:
        return "null"
    for t, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (Decimal, "decimal"), (str, "text"),
                    (dt.datetime, "timestamp"), (dt.date, "date"), (bytes, "bytes")):
        if isinstance(value, t):
            return name
    return "json"


def merge_types(types: set[str]) -> CanonicalType:
    """One column type for the types seen in a sample: numbers widen, anything else mixed becomes json."""
    types = types - {"null"}
    if not types:
        return "text"
    if len(types) == 1:
        return cast("CanonicalType", next(iter(types)))  # type_of() names canonical types only
    if types <= {"integer", "float"}:
        return "float"
    if types <= {"integer", "decimal", "float"}:
        return "decimal"
    return "json"


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(canonical(record), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(record: dict[str, Any]) -> int:
    return int(hashlib.sha256(encode(record)).hexdigest()[:_HASH_HEX], 16)


def combine(hashes_sum: int) -> str:
    """The digest of a set of records: the hex of the sum of their hashes (order-independent)."""
    return format(hashes_sum, "x")


def key_json(key: tuple[Any, ...] | None) -> str | None:
    """A key as JSON, for the control store and reports."""
    if key is None:
        return None
    return json.dumps([canonical(v) for v in key], ensure_ascii=False)


def key_from_json(text: str | None) -> tuple[Any, ...] | None:
    if text is None:
        return None
    return tuple(_decode(v) for v in json.loads(text))


def _decode(tagged: Any) -> Any:
    if not isinstance(tagged, str) or len(tagged) < 2 or tagged[1] != ":":
        return tagged
    tag, body = tagged[0], tagged[2:]
    if tag == "s":
        return body
    if tag == "n":
        number = Decimal(body)
        return int(number) if number == number.to_integral_value() and "." not in body else number
    if tag == "t":
        return dt.datetime.strptime(body, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if tag == "d":
        return dt.date.fromisoformat(body)
    if tag == "b":
        return base64.b64decode(body)
    return tagged


def jsonable(value: Any) -> Any:
    """A plain-JSON view of a canonical value, for JSON columns and reports."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def int64(value: int, provider: str | None = None) -> int:
    """`value`, refused (UnsupportedValue) when it does not fit the 64 bits document stores keep integers in."""
    if not -(2**63) <= value < 2**63:
        raise UnsupportedValue(f"integer {value} does not fit in 64 bits", hint="store it as a decimal",
                               provider=provider)
    return value
