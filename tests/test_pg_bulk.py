"""PostgreSQL bulk copies build the target's primary key after the load: idempotent, resumable, and healed by any
later run."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from shiftover.adapters.base import KeyRange
from shiftover.adapters.registry import open_adapter
from shiftover.tasks.migration import finish_target, prepare_target
from tests.helpers import config, write_config


def _marker(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT obj_description(to_regclass('public.things'), 'pg_class')").scalar()
    finally:
        engine.dispose()


def test_key_left_out_then_added_once(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric(8,2))")
        conn.exec_driver_sql("INSERT INTO things SELECT g, 'thing ' || g, g / 4.0 FROM generate_series(1, 1000) g")
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src:
        schema = src.schema("things")
    assert prepare_target.fn(str(cfg_path), "dst", [schema], ["things"]) == ["things"]
    assert _marker(pg_url2) == 'shiftover: primary key added after the bulk copy: ["id"]'
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert dst.schema("things").key == ()
        assert not dst.schema("things").column("id").nullable
        first = KeyRange(None, (400,))
        for _ in range(2):  # a retried chunk replaces its range: no key is needed to stay idempotent
            assert dst.copy_range_from(src, "things", first) == 400
        assert dst.copy_range_from(src, "things", KeyRange((400,), None)) == 600
        assert dst.count("things") == 1000
    # a later run that does not bulk-copy this table (another strategy, or a resume) adds the key first
    assert prepare_target.fn(str(cfg_path), "dst", [schema], []) == []
    assert _marker(pg_url2) is None
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert dst.schema("things").key == ("id",)
        assert [r["id"] for r in dst.scan("things", limit=3)] == [1, 2, 3]
    finish_target.fn(str(cfg_path), "dst", ["things"])  # nothing left to do: no error, no change
    with open_adapter(cfg, "dst") as dst:
        assert dst.schema("things") == schema


def test_a_table_shiftover_did_not_create_is_left_as_it_is(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"dst": {"kind": "postgresql", "url": pg_url, "role": "primary"}})
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE things (id bigint, name text)")
        conn.exec_driver_sql("COMMENT ON TABLE things IS 'the app''s own table'")
    finish_target.fn(str(cfg_path), "dst", ["things"])
    assert _marker(pg_url) == "the app's own table"
    with open_adapter(config(cfg_path), "dst") as dst:
        assert dst.schema("things").key == ()


def test_a_binary_copy_tells_its_progress_by_rows_as_it_goes(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    """The progress artifact and the CLI's bar move within a native COPY chunk: the copy reports the rows handed on so
    far at each ~128 KB block (tasks/migration.ChunkMeter writes them to the control store at most every 0.5 s)."""
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric(8,2))")
        conn.exec_driver_sql("INSERT INTO things SELECT g, repeat('thing ', 8) || g, g / 4.0 "
                             "FROM generate_series(1, 30000) g")
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src:
        schema = src.schema("things")
    prepare_target.fn(str(cfg_path), "dst", [schema], ["things"])
    heard: list[int] = []
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        copied = dst.copy_range_from(src, "things", KeyRange(None, None), heard.append)
    assert copied == 30000
    assert len(heard) >= 5 and heard == sorted(heard) and heard[0] < copied  # moved while the chunk copied
    assert copied - 3000 <= heard[-1] <= copied + 2  # the last block's count is close to the whole
