"""SQLite → SQLite in the engine (adapters/sqlite/native.py): the copy by INSERT … SELECT from the attached source, and
digests over stored values that see every changed value and refuse to compare differently declared tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shiftover.adapters.base import KeyRange
from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from shiftover.flows.migrate import migrate
from tests.helpers import assert_same_records, config, write_config

TABLES = ("customers", "orders", "order_items")


def _cfg(tmp_path: Path, src_url: str = "sqlite:///src.db") -> Path:
    return write_config(tmp_path, {"src": {"kind": "sqlite", "url": src_url, "role": "primary"},
                                   "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}})


@pytest.mark.usefixtures("prefect_harness")
def test_sqlite_to_sqlite_copies_in_the_engine_and_digests_stored_values(tmp_path: Path) -> None:
    cfg_path = _cfg(tmp_path)
    with open_adapter(config(cfg_path), "src") as src:
        seed(src, 3000)
    report = migrate(source="src", target="dst", config_path=str(cfg_path), chunk_rows=700)
    assert report.status == "switched"
    assert {c.path for c in report.collections} == {"native copy (sqlite)"}
    assert all(c.digests_equal and c.digest_method.startswith("in-engine (sqlite, stored values ")
               for c in report.collections)
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert sum(assert_same_records(src, dst, t) for t in TABLES) == 3000
        assert dst.declared_types("orders") == src.declared_types("orders")


def test_stored_value_digests_see_a_changed_value_and_a_different_declaration(tmp_path: Path) -> None:
    cfg = config(_cfg(tmp_path))
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        seed(src, 300)
        dst.create_collection(src.schema("orders"))
        whole = KeyRange(None, None)
        assert dst.copy_range_from(src, "orders", whole) == dst.count("orders") == src.count("orders") > 0
        assert dst.copy_range_from(src, "orders", whole) == src.count("orders")  # idempotent: the range is replaced
        columns = sorted(src.schema("orders").names)
        [method] = src.pushdown_methods("orders", columns)
        assert dst.pushdown_methods("orders", columns) == (method,)
        assert src.pushdown_digests("orders", [whole], columns, method) == \
            dst.pushdown_digests("orders", [whole], columns, method)
        key = src.key_of("orders")[0]
        with dst._conn() as conn:  # one value of one row, changed behind the adapter's back
            conn.exec_driver_sql(f'UPDATE orders SET status = status || \'!\' WHERE "{key}" = '
                                 f'(SELECT min("{key}") FROM orders)')
        [a], [b] = (side.pushdown_digests("orders", [whole], columns, method) for side in (src, dst))
        assert a.count == b.count and a.digest != b.digest
    # the same columns declared differently store values differently: no shared in-engine method
    other = sa.create_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    with other.begin() as conn:
        conn.exec_driver_sql("DROP TABLE orders")
        conn.exec_driver_sql("CREATE TABLE orders (" + ", ".join(
            f'"{c}" {"INTEGER PRIMARY KEY" if c == key else "NUMERIC"}' for c in columns) + ")")
    other.dispose()
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert src.pushdown_methods("orders", columns) != dst.pushdown_methods("orders", columns)
