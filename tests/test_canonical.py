from __future__ import annotations

import datetime as dt
from decimal import Decimal

from shiftover.adapters import canonical


def test_numbers_compare_by_value() -> None:
    assert canonical.encode({"v": 1}) == canonical.encode({"v": Decimal("1.00")}) == canonical.encode({"v": 1.0})
    assert canonical.encode({"v": Decimal("12345678901234567890.123456789")}) != canonical.encode(
        {"v": Decimal("12345678901234567890.12345678")})
    assert canonical.encode({"v": Decimal("-0.0")}) == canonical.encode({"v": 0})


def test_timestamps_compare_by_instant() -> None:
    utc = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    tokyo = utc.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert canonical.encode({"t": utc}) == canonical.encode({"t": tokyo})
    assert canonical.encode({"t": utc}) != canonical.encode({"t": utc + dt.timedelta(microseconds=1)})


def test_maps_are_order_independent_and_types_are_tagged() -> None:
    assert canonical.encode({"a": 1, "b": {"x": [1, "ü"], "y": None}}) == canonical.encode(
        {"b": {"y": None, "x": [1, "ü"]}, "a": 1})
    assert canonical.encode({"v": "1"}) != canonical.encode({"v": 1})
    assert canonical.encode({"v": b"ab"}) != canonical.encode({"v": "ab"})
    assert canonical.record_hash({"a": 1}) == canonical.record_hash({"a": 1})


def test_keys_round_trip_through_json() -> None:
    key = (5, "zoë", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), Decimal("1.5"), b"\x00")
    assert canonical.key_from_json(canonical.key_json(key)) == key
