"""SQLite writes as row tuples (adapters/sqlite/rows.py) and the PostgreSQL → SQLite gate that digests the source as
SQLite stores it: the same stored values as the generic path, value by value; a changed value, a missing row and a
differently declared table are all seen."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, KeyRange
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.sql import SqlAdapter
from shiftover.adapters.sqlite import native as sqlite_native
from shiftover.adapters.sqlite import rows as sqlite_rows
from shiftover.flows.migrate import migrate
from shiftover.tasks.digests import ENCODED, measure
from shiftover.tasks.migration import plan_collections
from tests.helpers import assert_same_records, config, write_config
from tests.test_any_to_any import ITEMS, item_rows

ODD = [
    {"id": 1, "name": "a\x00b", "amount": Decimal("-0"), "ratio": -0.0, "active": True,
     "at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))), "day": dt.date(1, 1, 1),
     "doc": {"d": Decimal("1.10"), "t": dt.datetime(2024, 1, 1), "b": b"\x00", "k": [1, (2, 3)]}, "blob": b""},
    {"id": 2, "name": "", "amount": Decimal("1E+3"), "ratio": 5e-324, "active": False,
     "at": dt.datetime(2024, 1, 1, 12), "day": "2024-02-29", "doc": {"1": None, "x": [True, 1.5, "ü"]},
     "blob": bytearray(b"\xff")},
    {"id": 3, "name": "Zoë", "amount": Decimal("0.000100"), "ratio": 1e308, "active": 2,
     "at": "2024-03-01T00:00:00+02:00", "day": dt.date(2024, 3, 1), "doc": [1, "two"], "blob": "text as bytes"},
    {"id": 4, "name": None, "amount": 7, "ratio": None, "active": None, "at": None, "day": None, "doc": None,
     "blob": None},
    {"id": 5, "name": "x", "amount": 2.5, "ratio": 3, "active": 0,
     "at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "day": dt.date(2024, 1, 1), "doc": "plain string",
     "blob": memoryview(b"mv")},
]


def _stored(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()


@pytest.mark.parametrize("plain_json", [False, True])
def test_encoded_values_are_the_adapters_own(tmp_path: Path, plain_json: bool) -> None:
    cfg = config(write_config(tmp_path, {"lite": {"kind": "sqlite", "url": "sqlite:///lite.db"}}))
    records = ODD + item_rows(60)
    with open_adapter(cfg, "lite") as lite:
        lite.create_collection(ITEMS)
        names = ITEMS.names
        rows = sqlite_rows.encode(lite, ITEMS, names, [{c: r.get(c) for c in names} for r in records],
                                  plain_json=plain_json)
        expected = [tuple(None if r.get(c) is None else lite._to_db(ITEMS.column(c), r[c]) for c in names)
                    for r in records]
        assert rows == expected


def test_tuple_writes_store_what_the_generic_path_stores(tmp_path: Path) -> None:
    cfg = config(write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db"},
                                         "b": {"kind": "sqlite", "url": "sqlite:///b.db"}}))
    records = ODD + item_rows(60)
    with open_adapter(cfg, "a") as a, open_adapter(cfg, "b") as b:
        for side in (a, b):
            side.create_collection(ITEMS)
        assert a.upsert("items", records) == len(records)  # the tuple path
        SqlAdapter.upsert(b, "items", records)  # the generic one, record by record through _to_db
        a.upsert("items", [{"id": 3, "name": "changed"}])  # a partial record updates only its fields
        SqlAdapter.upsert(b, "items", [{"id": 3, "name": "changed"}])
    assert _stored(tmp_path / "a.db", "items") == _stored(tmp_path / "b.db", "items")


def test_replace_range_hashed_is_the_stored_values_digest_of_what_it_wrote(tmp_path: Path) -> None:
    cfg = config(write_config(tmp_path, {"lite": {"kind": "sqlite", "url": "sqlite:///lite.db"}}))
    records = item_rows(300)
    with open_adapter(cfg, "lite") as lite:
        lite.create_collection(ITEMS)
        columns = sorted(ITEMS.names)
        [method] = lite.pushdown_methods("items", columns)
        assert lite.encoded_method(ITEMS, columns) == method
        whole = KeyRange(None, None)
        total = lite.replace_range_hashed("items", whole, records, columns)
        assert lite.encoded_hash("items", records, columns) == total
        [stored] = lite.pushdown_digests("items", [whole], columns, method)
        assert (stored.count, stored.digest) == (300, canonical.combine(total))
        # the per-row form of the digest (row order does not matter)
        rows = _stored(tmp_path / "lite.db", "items")
        order = [ITEMS.names.index(c) for c in columns]
        per_row = sum(int.from_bytes(hashlib.blake2b(repr(tuple(r[i] for i in order)).encode(), digest_size=8)
                                     .digest(), "little") for r in reversed(rows))
        assert per_row == total == sqlite_native.rows_hash([tuple(r[i] for i in order) for r in rows])
        # a table declared otherwise stores values otherwise: no encoded method
        other = CollectionSchema("items", tuple(Column(c.name, "text" if c.name == "ratio" else c.type, c.nullable,
                                                       c.precision, c.scale) for c in ITEMS.columns), ITEMS.key)
        assert lite.encoded_method(other, columns) is None


@pytest.mark.usefixtures("prefect_harness")
def test_postgres_to_sqlite_gate_digests_the_source_as_sqlite_stores_it(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"pg": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "lite": {"kind": "sqlite", "url": "sqlite:///lite.db"}})
    cfg = config(cfg_path)
    with open_adapter(cfg, "pg") as pg:
        pg.create_collection(ITEMS)
        pg.upsert("items", item_rows(240))
    report = migrate(source="pg", target="lite", config_path=str(cfg_path), chunk_rows=60,
                     switch=False)
    [items] = report.collections
    assert report.status == "validated" and items.digests_equal and items.digest_method.startswith(ENCODED)
    assert items.chunks == 4  # 240 rows in chunks of 60: no empty fifth chunk after the last key
    with open_adapter(cfg, "pg") as pg, open_adapter(cfg, "lite") as lite:
        assert assert_same_records(pg, lite, "items") == 240
        [plan] = plan_collections.fn(str(cfg_path), "pg", "lite", ["items"], 60)
        with lite._conn() as conn:  # one value changed, one row gone, behind the adapter's back
            conn.exec_driver_sql("UPDATE items SET name = name || '!' WHERE id = 100")
            conn.exec_driver_sql("DELETE FROM items WHERE id = 200")
        evidence = measure(cfg, pg, lite, "items", plan.ranges)
        assert evidence.digest_method.startswith(ENCODED)
        differ = [s.range for s, t in zip(evidence.source_digests, evidence.target_digests, strict=True)
                  if (s.count, s.digest) != (t.count, t.digest)]
        assert [r.contains((100,)) or r.contains((200,)) for r in differ] == [True, True]
        assert [d.count for d in evidence.target_digests] == [60, 60, 60, 59]
