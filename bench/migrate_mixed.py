"""Benchmark: immediate migrations across engine kinds, each beside the raw bulk-write rate of the same SDK.

    .venv/bin/python bench/migrate_mixed.py [--rows 200000] [--batch 5000] [--chunk 50000] [--workers 2]
                                            [--only sqlite|docstores]

Runs in one process, on the same generated records:
- raw Firestore: google-cloud-firestore WriteBatch of 500, sequential, documents pre-encoded (Decimal as the
  adapter's {"@decimal": text} marker), into a scratch collection; raw Firestore read: one `stream()` of them;
- raw MongoDB: pymongo bulk_write(InsertOne..., ordered=False) in batches of 1000 (mongomock unless MONGODB_URL);
- raw PostgreSQL: psycopg binary COPY of the same rows;
- raw SQLite: the stdlib sqlite3 `executemany` of the same rows in one transaction (values pre-encoded as the SQLite
  adapter stores them: decimals and timestamps as text, JSON as text), and one `SELECT` of them all;
- the `migrate` flow (strategy immediate, no pointer switch): PostgreSQL → Firestore, Firestore → PostgreSQL,
  PostgreSQL → MongoDB. Its time is the flow's own clock: plan, freeze, copy, both-side digests, GX suites, unfreeze.
  The GX worker process is started and has imported GX before the clock starts (a one-time cost of 4-12 s here).

It starts its own Firestore emulator (tests/fixtures_docstores.py's launcher) and empties it between phases; the
emulator's Java process grows by several GB per 100k documents. PostgreSQL: SHIFTOVER_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/postgres); two scratch databases are created and dropped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect" / "bench"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import psycopg  # noqa: E402
import yaml  # noqa: E402
from psycopg import sql  # noqa: E402

from shiftover.adapters.base import CollectionSchema, Column  # noqa: E402
from tests.fixtures_docstores import firestore_launcher  # noqa: E402

PG_ADMIN = os.environ.get("SHIFTOVER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PROJECT = "shiftover-bench"
SCHEMA = CollectionSchema("bench_items", (
    Column("id", "integer", False), Column("name", "text"), Column("amount", "decimal", True, 14, 2),
    Column("at", "timestamp"), Column("active", "boolean"), Column("doc", "json"),
), ("id",))


def records(n: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return [{"id": i, "name": None if i % 9 == 0 else f"Zoë Müller №{i}",
             "amount": Decimal(rng.randrange(-10**6, 10**8)) / 100,
             "at": base + dt.timedelta(seconds=i, microseconds=rng.randrange(10**6)),
             "active": i % 2 == 0,
             "doc": None if i % 5 == 0 else {"tags": ["a", "ü"], "n": i, "city": "Kraków"}} for i in range(1, n + 1)]


# -- servers ----------------------------------------------------------------------------------------------------------
class Emulator:
    def __init__(self) -> None:
        launcher = firestore_launcher()
        if launcher is None:
            sys.exit("the Firestore emulator is not installed (google-cloud-cli-firestore-emulator and Java)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="firestore-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([launcher, "start", "--host=127.0.0.1", f"--port={self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"the Firestore emulator did not start; see {self.log.name}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def reset(self) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=120):
            pass

    def rss_mb(self) -> float:
        """Resident memory of the emulator's process group (the launcher and its java child)."""
        out = subprocess.run(["ps", "-o", "rss=", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return sum(int(x) for x in out.split()) / 1024

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def make_db() -> str:
    name = f"shiftover_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_db(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def db_url(name: str, driver: str = "postgresql") -> str:
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", f"{driver}://", 1)


# -- raw SDK rates ----------------------------------------------------------------------------------------------------
def raw_firestore(host: str, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(write docs/s with WriteBatch of 500, read docs/s with one stream()) on a scratch collection."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
    client._emulator_host = host
    coll = client.collection("raw_bench")
    docs = [(str(r["id"]), {**{k: v for k, v in r.items() if k != "id"},
                            "amount": {"@decimal": str(r["amount"])}}) for r in rows]
    start = time.perf_counter()
    for i in range(0, len(docs), 500):
        batch = client.batch()
        for doc_id, doc in docs[i:i + 500]:
            batch.set(coll.document(doc_id), doc)
        batch.commit()
    write = len(docs) / (time.perf_counter() - start)
    start = time.perf_counter()
    n = sum(1 for _ in coll.stream())
    read = n / (time.perf_counter() - start)
    client.close()
    return write, read


def raw_mongo(url: str, database: str, rows: list[dict[str, Any]]) -> float:
    from bson.decimal128 import Decimal128
    from pymongo import InsertOne

    if url.startswith("mongomock://"):
        import mongomock

        client: Any = mongomock.MongoClient(tz_aware=True)
    else:
        import pymongo

        client = pymongo.MongoClient(url, tz_aware=True)
    coll = client[database]["raw_bench"]
    docs = [{"_id": r["id"], **{k: v for k, v in r.items() if k != "id"}, "amount": Decimal128(r["amount"])}
            for r in rows]
    start = time.perf_counter()
    for i in range(0, len(docs), 1000):
        coll.bulk_write([InsertOne(d) for d in docs[i:i + 1000]], ordered=False)
    rate = len(docs) / (time.perf_counter() - start)
    client.drop_database(database)
    client.close()
    return rate


def raw_pg_copy(name: str, rows: list[dict[str, Any]]) -> float:
    from psycopg.types.json import Jsonb

    with psycopg.connect(db_url(name)) as conn:
        conn.execute("CREATE TABLE raw_bench (id bigint PRIMARY KEY, name text, amount numeric(14,2), "
                     "at timestamptz, active boolean, doc jsonb)")
        start = time.perf_counter()
        with conn.cursor().copy("COPY raw_bench FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r["id"], r["name"], r["amount"], r["at"], r["active"],
                                None if r["doc"] is None else Jsonb(r["doc"])))
        conn.commit()
        rate = len(rows) / (time.perf_counter() - start)
        conn.execute("DROP TABLE raw_bench")
    return rate


def raw_sqlite(path: Path, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(write rate, read rate) of the stdlib sqlite3 on the same rows, encoded as the SQLite adapter stores them."""
    import json
    import sqlite3

    encoded = [(r["id"], r["name"], str(r["amount"]), r["at"].isoformat(timespec="microseconds"),
                1 if r["active"] else 0, None if r["doc"] is None else json.dumps(r["doc"], ensure_ascii=False))
               for r in rows]
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE raw_bench (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, at TEXT, "
                     "active INTEGER, doc TEXT)")
        start = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO raw_bench VALUES (?, ?, ?, ?, ?, ?)", encoded)
        write = len(rows) / (time.perf_counter() - start)
        start = time.perf_counter()
        read = len(conn.execute("SELECT * FROM raw_bench ORDER BY id").fetchall()) / (time.perf_counter() - start)
    finally:
        conn.close()
        path.unlink(missing_ok=True)
    return write, read


# -- the flow ---------------------------------------------------------------------------------------------------------
def run_migration(cfg_path: Path, source: str, target: str, args: argparse.Namespace) -> tuple[float, Any]:
    from shiftover.flows.migrate import migrate

    report = migrate(source=source, target=target, config_path=str(cfg_path), switch=False,
                     batch_size=args.batch, chunk_rows=args.chunk, workers=args.workers)
    if report.status != "validated" or not all(c.digests_equal for c in report.collections):  # --no-switch
        sys.exit(f"{source} → {target} did not validate: {report.status} {report.error}")
    return report.seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000, help="records per scan/write batch in the flow")
    parser.add_argument("--chunk", type=int, default=50_000, help="records per key-range chunk (task)")
    parser.add_argument("--workers", type=int, default=2, help="chunks copied at once")
    parser.add_argument("--only", choices=("sqlite", "docstores"), default=None,
                        help="run only the SQLite paths (PG → SQLite, SQLite → SQLite) or only the document stores")
    args = parser.parse_args()

    mongo_url = os.environ.get("MONGODB_URL")
    mongo_db = f"shiftover_bench_{uuid.uuid4().hex[:6]}"
    mongo_note = "real server at MONGODB_URL" if mongo_url else "mongomock (in-process; set MONGODB_URL for a server)"
    print(f"rows: {args.rows:,}; batch {args.batch}, chunk {args.chunk}, workers {args.workers}; MongoDB: {mongo_note}")
    rows = records(args.rows)
    docstores = args.only != "sqlite"
    emulator = Emulator() if docstores else None
    pg_a, pg_b = make_db(), make_db()
    tmp = Path(tempfile.mkdtemp(prefix="shiftover-bench-"))
    results: list[tuple[str, float, str, float]] = []
    try:
        from shiftover.adapters.config import load_config
        from shiftover.adapters.registry import open_adapter

        mongo_provider = {"kind": "mongodb", "url": mongo_url or f"mongomock://bench/{mongo_db}"}
        if mongo_url:
            mongo_provider["options"] = {"database": mongo_db}
        cfg_path = tmp / "backends.yaml"
        cfg_path.write_text(yaml.safe_dump({
            "providers": {
                "pg": {"kind": "postgresql", "url": db_url(pg_a, "postgresql+psycopg"), "role": "primary"},
                "pg2": {"kind": "postgresql", "url": db_url(pg_b, "postgresql+psycopg")},
                **({"fs": {"kind": "firestore", "url": f"firestore://{PROJECT}",
                           "options": {"emulator_host": emulator.host}},
                    "mongo": mongo_provider} if emulator else {}),
                "lite": {"kind": "sqlite", "url": f"sqlite:///{tmp}/lite.db"},
                "lite2": {"kind": "sqlite", "url": f"sqlite:///{tmp}/lite2.db"},
            },
            "control": {"url": f"sqlite:///{tmp}/control.db"}}), encoding="utf-8")

        print("raw bulk rates (same documents):", flush=True)
        pg_raw = raw_pg_copy(pg_b, rows)
        print(f"  PostgreSQL binary COPY          {pg_raw:>10,.0f} rows/s", flush=True)
        fs_write = fs_read = mongo_raw = float("nan")
        if emulator:
            fs_write, fs_read = raw_firestore(emulator.host, rows)
            print(f"  Firestore WriteBatch(500)       {fs_write:>10,.0f} docs/s   "
                  f"(stream() read {fs_read:,.0f} docs/s; emulator RSS {emulator.rss_mb():,.0f} MB)", flush=True)
            emulator.reset()
            mongo_raw = raw_mongo(mongo_url or "mongomock://", f"{mongo_db}_raw", rows)
            print(f"  MongoDB bulk_write(InsertOne)   {mongo_raw:>10,.0f} docs/s   "
                  f"({'server' if mongo_url else 'mongomock'})", flush=True)
        lite_write, lite_read = raw_sqlite(tmp / "raw.db", rows)
        print(f"  SQLite executemany (1 txn)      {lite_write:>10,.0f} rows/s   "
              f"(one SELECT read {lite_read:,.0f} rows/s)",
              flush=True)

        with open_adapter(load_config(cfg_path), "pg") as pg:
            pg.create_collection(SCHEMA)
            for i in range(0, len(rows), 10_000):
                pg.upsert(SCHEMA.name, rows[i:i + 10_000])
        from shiftover.expectations.suites import prewarm, validate

        prewarm(yield_cpu=False)  # the GX worker process: a one-time import, kept off the flows' clocks
        validate([])  # returns once the worker has imported GX

        print("migrations (strategy immediate, validation included):", flush=True)
        pairs = [("pg", "fs", min(pg_raw, fs_write), "Firestore WriteBatch"),
                 ("fs", "pg2", min(pg_raw, fs_write, fs_read), "Firestore"),
                 ("pg", "mongo", min(pg_raw, mongo_raw), "MongoDB bulk_write"),
                 ("pg", "lite", min(pg_raw, lite_write), "SQLite executemany"),
                 ("lite", "lite2", min(lite_read, lite_write), "SQLite")]
        if args.only:
            pairs = [p for p in pairs if ("lite" in p[1]) == (args.only == "sqlite")]
        for source, target, raw, raw_name in pairs:
            seconds, report = run_migration(cfg_path, source, target, args)
            rate = args.rows / seconds
            results.append((f"{source} → {target}", rate, raw_name, raw))
            copy_s = sum(c.seconds for c in report.collections)
            print(f"  {source:>3} → {target:<5} {rate:>10,.0f} rows/s  ({seconds:.1f} s; "
                  f"chunk task time {copy_s:.1f} s;"
                  f" digests: {report.collections[0].digest_method}) = {rate / raw:.2f} × raw {raw_name} "
                  f"{raw:,.0f}/s", flush=True)
            print("      phases: " + " · ".join(f"{k} {v:.1f} s" for k, v in report.phase_seconds.items()), flush=True)
            if target == "pg2" and emulator:
                emulator.reset()
        print("target ≥ 0.70 × the slower side's raw bulk rate for the document stores, ≥ 0.50 for SQLite:")
        for name, rate, _raw_name, raw in results:
            goal = 0.5 if "lite" in name else 0.7
            print(f"  {name:<12} {rate / raw:.2f}  {'met' if rate / raw >= goal else 'NOT met'}")
    finally:
        if emulator:
            emulator.stop()
        drop_db(pg_a)
        drop_db(pg_b)


if __name__ == "__main__":
    main()
