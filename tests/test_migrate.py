"""The immediate migration against real PostgreSQL and SQLite: value-by-value equality, the GX gate, resume, secrets."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiftover.adapters.errors import BackendError, CutoverBlocked, MigrationFailed, WriteFrozen
from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from shiftover.control.store import ControlStore
from shiftover.flows.migrate import migrate
from tests.helpers import assert_same_records, config, write_config
from tests.helpers import newest_artifact as _artifact

pytestmark = pytest.mark.usefixtures("prefect_harness")
TABLES = ("customers", "orders", "order_items")


def _seeded(cfg_path: Path, name: str, rows: int = 3000) -> None:
    with open_adapter(config(cfg_path), name) as src:
        seed(src, rows)


def _params(cfg_path: Path, source: str, target: str, **kw) -> dict[str, Any]:
    return dict(source=source, target=target, config_path=str(cfg_path), chunk_rows=700, batch_size=300,
                report_dir=str(cfg_path.parent / "reports"), **kw)


def _pointer(cfg_path: Path):
    return ControlStore(config(cfg_path).control.url.get_secret_value()).pointer()


@pytest.mark.parametrize("direction", ["pg_to_sqlite", "sqlite_to_pg", "pg_to_pg"])
def test_migration_copies_every_value_and_switches(tmp_path: Path, pg_url: str, pg_url2: str, direction: str) -> None:
    providers = {
        "pg_to_sqlite": {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                         "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}},
        "sqlite_to_pg": {"src": {"kind": "sqlite", "url": "sqlite:///src.db", "role": "primary"},
                         "dst": {"kind": "postgresql", "url": pg_url}},
        "pg_to_pg": {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                     "dst": {"kind": "postgresql", "url": pg_url2}},
    }[direction]
    cfg_path = write_config(tmp_path, providers)
    _seeded(cfg_path, "src")
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert sum(assert_same_records(src, dst, t) for t in TABLES) == 3000
        assert dst.schema("orders").key == ("id",)
        assert [c.type for c in dst.schema("customers").columns] == [c.type for c in src.schema("customers").columns]
        assert src.frozen() == [] and dst.frozen() == []
    pointer = _pointer(cfg_path)
    assert (pointer.provider, pointer.epoch) == ("dst", 2)
    assert all(c.digests_equal for c in report.collections)
    assert {e.suite for e in report.expectations} == {"record_counts", "integrity", "schema"}
    if direction == "pg_to_pg":
        assert {c.path for c in report.collections} == {"binary COPY"}
        assert all(c.digest_method == "in-engine (postgresql, column hashes)" for c in report.collections)
        assert list(report.phase_seconds) == ["plan", "freeze", "schema", "copy", "index", "validate", "switch"]
        with sa.create_engine(providers["dst"]["url"]).connect() as conn:  # keys built after the load, markers gone
            keys = conn.exec_driver_sql("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                                        "WHERE i.indisprimary AND c.relname = ANY(%(t)s)", {"t": list(TABLES)})
            assert keys.scalar() == 3
            assert conn.exec_driver_sql("SELECT count(obj_description(oid, 'pg_class')) FROM pg_class "
                                        "WHERE relname = ANY(%(t)s)", {"t": list(TABLES)}).scalar() == 0
    markdown = asyncio.run(_artifact("migrate-src-to-dst"))
    assert "Is my data all there?" in markdown and "| orders | 1,000 | 1,000 | ✓ equal |" in markdown
    assert "![time per phase](data:image/svg+xml;base64," in markdown
    assert "| pass | collection unique: 0 duplicates in 3 collections |" in markdown  # what each expectation found
    assert "| pass | row counts equal in 3/3 collections |" in markdown and " nulls in source_digest (" in markdown
    table = asyncio.run(_artifact("migrate-src-to-dst-table"))
    assert "order_items" in table
    page = tmp_path / "reports" / f"migrate-src-to-dst-{report.run_id}.html"
    assert page.as_uri() in asyncio.run(_artifact("migrate-src-to-dst-html"))
    assert "<td>orders</td><td class=n>1,000</td><td class=n>1,000</td><td>✓ equal</td>" in page.read_text()


def test_altered_target_blocks_cutover_and_names_the_range(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}})
    _seeded(cfg_path, "src")
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        dst.create_collection(src.schema("orders"))
        with dst.engine.begin() as conn:  # something in the target engine alters one row as it arrives
            conn.exec_driver_sql("CREATE TRIGGER tamper AFTER INSERT ON orders WHEN NEW.id = 555 "
                                 "BEGIN UPDATE orders SET note = 'tampered' WHERE id = 555; END")
        before = src.count("orders")
    with pytest.raises(CutoverBlocked) as info:
        migrate(**_params(cfg_path, "src", "dst"))
    err = info.value
    assert err.code == "BACKEND_003"
    assert "orders (start .. 700]" in str(err) and "source_digest == target_digest" in str(err)
    pointer = _pointer(cfg_path)
    assert (pointer.provider, pointer.epoch) == ("src", 1)
    with open_adapter(cfg, "src") as src:
        assert src.frozen() == [] and src.count("orders") == before
        src.upsert("orders", [{**src.get("orders", (1,)), "note": "writable again"}])  # the freeze was lifted
    report_md = asyncio.run(_artifact("migrate-src-to-dst"))
    assert "Cutover blocked" in report_md and "(start .. 700]" in report_md
    assert ControlStore(cfg.control.url.get_secret_value()).freezes() == []


@pytest.mark.parametrize("payload_type", ["jsonb", "json"])
def test_pg_to_pg_in_engine_digests_catch_one_changed_value(tmp_path: Path, pg_url: str, pg_url2: str,
                                                            payload_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PG → PG digests are computed in both engines: each field by its type's own hash, or by its text where the type
    has none (json). Either way one value changed on the target blocks the cutover, and the re-run after the cause is
    gone re-copies that range and switches."""
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    ddl = f"CREATE TABLE docs (id bigint PRIMARY KEY, payload {payload_type}, amount numeric(10,2), at timestamptz)"
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("INSERT INTO docs SELECT g, json_build_object('n', g, 'ü', 'é'), g * 1.25, "
                             "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' "
                             "FROM generate_series(1, 2000) AS g")
    from shiftover.adapters.postgres.adapter import PostgresAdapter

    original = PostgresAdapter.copy_range_from

    def tampered(self, source, name, rng, progress=None):  # type: ignore[no-untyped-def]  # one value altered
        copied = original(self, source, name, rng, progress)
        if rng.contains((1234,)):
            with self.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE docs SET amount = amount + 0.01 WHERE id = 1234")
        return copied

    monkeypatch.setattr(PostgresAdapter, "copy_range_from", tampered)
    with pytest.raises(CutoverBlocked) as info:
        migrate(**_params(cfg_path, "src", "dst"))
    monkeypatch.undo()
    assert "docs (700 .. 1400]" in str(info.value) and "source_digest == target_digest" in str(info.value)
    assert "docs (start .. 700]" not in str(info.value)
    assert (_pointer(cfg_path).provider, _pointer(cfg_path).epoch) == ("src", 1)
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    assert [c.digest_method for c in report.collections] == ["in-engine (postgresql, column hashes)"]
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert assert_same_records(src, dst, "docs") == 2000


def test_source_rejects_writes_from_any_client_during_the_freeze(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "memory", "url": "memory://freeze"}})
    _seeded(cfg_path, "src", 600)
    cfg = config(cfg_path)
    seen: list[str] = []
    import shiftover.tasks.migration as tm

    original = tm._copy_batches

    def copy_and_try_a_direct_write(src, dst, plan, *hasher):
        engine = sa.create_engine(pg_url)  # a client that knows nothing of Shiftover
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE customers SET name = 'x' WHERE id = 1"))
        except sa.exc.DBAPIError as exc:
            seen.append(str(exc.orig))
        finally:
            engine.dispose()
        return original(src, dst, plan, *hasher)

    tm._copy_batches = copy_and_try_a_direct_write
    try:
        migrate(**_params(cfg_path, "src", "dst", collections=["customers"]))
    finally:
        tm._copy_batches = original
    assert seen and all("BACKEND_010" in s and "frozen" in s for s in seen)
    with open_adapter(cfg, "src") as src:
        assert src.get("customers", (1,))["name"] != "x"
        src.upsert("customers", [{**src.get("customers", (1,)), "name": "after"}])


def test_dry_run_changes_nothing(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}})
    _seeded(cfg_path, "src", 1200)
    report = migrate(**_params(cfg_path, "src", "dst", dry_run=True))
    assert report.status == "dry-run"
    assert {c.name: c.source_rows for c in report.collections} == {"customers": 200, "orders": 400,
                                                                   "order_items": 600}
    assert report.estimated_seconds is not None and any("will be created" in n for n in report.notes)
    with open_adapter(config(cfg_path), "dst") as dst:
        assert dst.collections() == []
    assert _pointer(cfg_path).epoch == 1


def test_failed_run_leaves_everything_and_a_rerun_resumes(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "memory", "url": "memory://resume"}})
    _seeded(cfg_path, "src", 2400)
    import shiftover.tasks.migration as tm

    original, calls = tm._copy_batches, []

    def fail_on_third_chunk(src, dst, plan, *hasher):
        calls.append((plan.collection, plan.idx))
        if len(calls) == 3:
            raise WriteFrozen("injected permanent-looking stop", provider="dst")
        return original(src, dst, plan, *hasher)

    tm._copy_batches = fail_on_third_chunk
    tm.copy_chunk.retries = 0
    try:
        with pytest.raises(MigrationFailed):
            migrate(**_params(cfg_path, "src", "dst", workers=1))
    finally:
        tm._copy_batches = original
        tm.copy_chunk.retries = 4
    cfg = config(cfg_path)
    control = ControlStore(cfg.control.url.get_secret_value())
    assert control.pointer().provider == "src"
    failed_run = control.runs(1)[0]
    assert failed_run.status == "failed"
    done_before = [c for c in control.chunks(failed_run.run_id) if c.done]
    assert len(done_before) == 2
    calls.clear()
    tm._copy_batches = lambda s, d, p, *h: (calls.append((p.collection, p.idx)), original(s, d, p, *h))[1]
    try:
        report = migrate(**_params(cfg_path, "src", "dst", workers=1))
    finally:
        tm._copy_batches = original
    assert report.status == "switched" and report.run_id == failed_run.run_id
    assert not set(calls) & {(c.collection, c.idx) for c in done_before}  # resumed, not restarted
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        for t in TABLES:
            assert_same_records(src, dst, t)


def test_password_never_appears_in_logs_artifacts_or_errors(tmp_path: Path, pg_url: str, caplog,
                                                            capfd, monkeypatch) -> None:
    import shiftover.tasks.migration as tm

    monkeypatch.setattr(tm.plan_collections, "retries", 0)
    secret = "Pa55-w0rd-nobody-sees"
    with_pw = pg_url.replace("postgres@", f"postgres:{secret}@")  # trust auth accepts any password
    bad = with_pw.replace("127.0.0.1:5432", "127.0.0.1:1")
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": with_pw, "role": "primary"},
                                       "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"},
                                       "down": {"kind": "postgresql", "url": bad}})
    _seeded(cfg_path, "src", 600)
    caplog.set_level(logging.DEBUG)
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    with pytest.raises(BackendError) as info:
        migrate(**_params(cfg_path, "dst", "down"))
    texts = [str(info.value), info.value.hint, caplog.text, report.model_dump_json(),
             asyncio.run(_artifact("migrate-src-to-dst")), asyncio.run(_artifact("migrate-dst-to-down"))]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    cfg = config(cfg_path)
    texts += [repr(cfg), str(cfg.model_dump()), cfg.providers["src"].display_url()]
    texts += [str(r.summary) for r in ControlStore(cfg.control.url.get_secret_value()).runs(10)]
    assert "BACKEND_006" in str(info.value) or "BACKEND_003" in str(info.value)
    for text in texts:
        assert secret not in text


def test_large_postgres_tables_are_split_from_a_sample_into_even_covering_chunks(pg_url: str) -> None:
    """Above ~250,000 rows the key boundaries come from a page sample, not a numbering of the whole index: the ranges
    still cover every key exactly once, in the engine's key order (bytewise for text), in chunks near the size asked."""
    from shiftover.adapters.base import ranges_from_boundaries
    from shiftover.adapters.postgres.adapter import PostgresAdapter

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE nums (id bigint PRIMARY KEY, v text)")
        conn.exec_driver_sql("INSERT INTO nums SELECT g * 3, 'x' FROM generate_series(1, 300000) AS g")
        conn.exec_driver_sql("CREATE TABLE words (k text PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO words SELECT (ARRAY['a', 'B', 'é', 'Z'])[1 + g %% 4] || md5(g::text) "
                             "FROM generate_series(1, 300000) AS g")
        conn.exec_driver_sql("ANALYZE nums; ANALYZE words")
    engine.dispose()
    adapter = PostgresAdapter("pg", pg_url, PostgresAdapter.Options.model_validate({}))
    with adapter:
        for name, key in (("nums", "id"), ("words", "k")):
            bounds = adapter.key_boundaries(name, 30_000)
            assert bounds == adapter.key_boundaries(name, 30_000)  # repeatable: a resumed plan sees the same
            assert 7 <= len(bounds) <= 11
            flat = [b[0] for b in bounds]
            assert flat == sorted(flat, key=lambda v: v.encode() if isinstance(v, str) else v)
            assert len(set(flat)) == len(flat)
            sizes = [adapter.count_range(name, r) for r in ranges_from_boundaries(bounds)]
            assert sum(sizes) == 300_000
            assert all(12_000 <= n <= 48_000 for n in sizes), sizes
            seen = [r[key] for rng in ranges_from_boundaries(bounds)
                    for rows in adapter.scan_range(name, rng, batch=50_000) for r in rows]
            assert len(seen) == len(set(seen)) == 300_000


def test_target_refusing_a_row_mid_copy_fails_cleanly_and_a_rerun_finishes(tmp_path: Path, pg_url: str,
                                                                          pg_url2: str) -> None:
    """The target's engine rejects a row in the middle of a binary COPY: the run stops with a BACKEND_ code (no driver
    traceback), the pointer stays, the source is writable again and untouched; once the cause is gone a re-run
    resumes and ends equal."""
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    ddl = "CREATE TABLE items (id bigint PRIMARY KEY, qty integer NOT NULL)"
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("INSERT INTO items SELECT g, g %% 50 FROM generate_series(1, 5000) AS g")
    dst_engine = sa.create_engine(pg_url2)
    with dst_engine.begin() as conn:
        conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("ALTER TABLE items ADD CONSTRAINT small CHECK (id <> 3333)")
    with pytest.raises(MigrationFailed) as info:
        migrate(**_params(cfg_path, "src", "dst", workers=1))
    assert info.value.code.startswith("BACKEND_") and "small" in str(info.value)
    assert "Traceback" not in str(info.value)
    assert (_pointer(cfg_path).provider, _pointer(cfg_path).epoch) == ("src", 1)
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src:
        assert src.frozen() == [] and src.count("items") == 5000
    with dst_engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items DROP CONSTRAINT small")
    dst_engine.dispose()
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert assert_same_records(src, dst, "items") == 5000


def test_validation_reads_only_the_target_when_the_chunks_digested_the_frozen_source(tmp_path: Path,
                                                                                      pg_url: str) -> None:
    """Each chunk digests the source range it copies (the source is frozen, so the digest holds until the cutover):
    validation then reads the target alone. A resumed run, whose earlier chunks made no digest here, reads both."""
    import shiftover.tasks.digests as tm

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}})
    _seeded(cfg_path, "src", 1500)
    original, reads = tm._client_source_digests, []
    tm._client_source_digests = lambda *a: (reads.append(a[2]), original(*a))[1]
    try:
        report = migrate(**_params(cfg_path, "src", "dst"))
    finally:
        tm._client_source_digests = original
    assert report.status == "switched" and all(c.digests_equal for c in report.collections)
    assert reads == []
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert sum(assert_same_records(src, dst, t) for t in TABLES) == 1500


def test_no_switch_copies_validates_and_says_so(tmp_path: Path) -> None:
    """--no-switch: the data is copied and proven equal, the pointer stays, and the report says "validated", not
    "switched"; the run counts as succeeded."""
    cfg_path = write_config(tmp_path, {"src": {"kind": "sqlite", "url": "sqlite:///src.db", "role": "primary"},
                                       "dst": {"kind": "sqlite", "url": "sqlite:///dst.db"}})
    _seeded(cfg_path, "src", 900)
    report = migrate(**_params(cfg_path, "src", "dst", switch=False))
    assert report.status == "validated" and report.epoch_after is None
    assert all(c.digests_equal and c.target_rows == c.source_rows for c in report.collections)
    assert (_pointer(cfg_path).provider, _pointer(cfg_path).epoch) == ("src", 1)
    assert ControlStore(config(cfg_path).control.url.get_secret_value()).runs(1)[0].status == "succeeded"
    markdown = asyncio.run(_artifact("migrate-src-to-dst"))
    assert "Copied and validated" in markdown and "Cut over" not in markdown


def test_interrupted_bulk_copy_leaves_the_key_to_the_rerun(tmp_path: Path, pg_url: str, pg_url2: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """PG → PG creates the target's tables from the source's pre-data (without keys) and builds the keys after the
    load. A run that stops half-way leaves the keyless table and the pointer where it was; the re-run (the same run,
    which recorded that it created the table) finishes the copy, builds the key and switches."""
    from shiftover.adapters.errors import InvalidRequest
    from shiftover.adapters.postgres.adapter import PostgresAdapter

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    with sa.create_engine(pg_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id bigint PRIMARY KEY, qty integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO items SELECT g, g %% 50 FROM generate_series(1, 5000) AS g")
    original, calls = PostgresAdapter.copy_range_from, []

    def third_fails(self, source, name, rng, progress=None):  # type: ignore[no-untyped-def]
        calls.append(rng)
        if len(calls) == 3:
            raise InvalidRequest("injected: the third chunk fails", provider=self.name)
        return original(self, source, name, rng, progress)

    monkeypatch.setattr(PostgresAdapter, "copy_range_from", third_fails)
    with pytest.raises(MigrationFailed):
        migrate(**_params(cfg_path, "src", "dst", workers=1))
    monkeypatch.undo()
    assert (_pointer(cfg_path).provider, _pointer(cfg_path).epoch) == ("src", 1)
    dst_engine = sa.create_engine(pg_url2)
    key_sql = ("SELECT count(*) FROM pg_index WHERE indisprimary AND indrelid = 'items'::regclass")
    with dst_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 1400  # two chunks of 700
        assert conn.exec_driver_sql(key_sql).scalar() == 0
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched" and "index" in report.phase_seconds
    with dst_engine.connect() as conn:
        assert conn.exec_driver_sql(key_sql).scalar() == 1
        assert conn.exec_driver_sql("SELECT obj_description('items'::regclass, 'pg_class')").scalar() is None
        assert conn.exec_driver_sql("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indisprimary AND "
                                    "indrelid = 'items'::regclass").scalar() == \
            "CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)"
    dst_engine.dispose()
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert assert_same_records(src, dst, "items") == 5000
        assert dst.schema("items").key == ("id",)


def test_the_progress_artifact_moves_within_one_chunk(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "slow": {"kind": "memory", "url": "memory://progress",
                                                "options": {"latency_ms": 60}}})  # each batch's write takes 60 ms
    _seeded(cfg_path, "src", 3600)  # 600 customers
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # what the UI shows, read from the API while the flow runs
        while not stop.wait(0.1):
            try:
                seen.append(float(asyncio.run(_artifact("migrate-src-to-slow-progress"))))
            except AssertionError:  # not created yet
                pass

    watcher = threading.Thread(target=contextvars.copy_context().run, args=(watch,))
    watcher.start()
    try:
        report = migrate(source="src", target="slow", config_path=str(cfg_path), chunk_rows=100_000,
                         batch_size=20, collections=["customers"], report_dir=str(tmp_path))
    finally:
        stop.set()
        watcher.join(30)
    assert report.status == "switched" and [c.chunks for c in report.collections] == [1]
    within = sorted({v for v in seen if 0 < v < 100})
    assert len(within) >= 2, f"the one chunk moved the bar only once: {seen}"
    assert seen[-1] == 100.0 and seen == sorted(seen)
