"""The application API's overhead: the same reads and writes through `backend.db` and through the provider's own client.

    python bench/api_overhead.py [--ops 10000] [--rounds 3] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

On SQLite (a file) and PostgreSQL (a scratch database), a table `items (id bigint primary key, name text, n integer)`
seeded with --ops/2 rows; then --ops operations, alternating a read by key and an upsert by key (each its own
transaction, as an app's request would make them), timed three ways in one run:
- raw:     the provider's own client (sqlite3; psycopg), one prepared statement per operation;
- adapter: Shiftover's adapter (open_adapter(...).get / .upsert), no router;
- api:     `Backend.from_config(...).db.get / .upsert` — the router: pointer, freezes, epochs, metrics.
Prints the median of --rounds for each, ops/s, and the overhead of the API over the raw client and over the adapter
(target in issue #17: API ≤ 10 % over the provider's own client). Scratch files and databases are removed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shiftover import Backend  # noqa: E402
from shiftover.adapters.config import load_config  # noqa: E402
from shiftover.adapters.registry import open_adapter  # noqa: E402
from tests.fixtures_clusters import write_config  # noqa: E402

CREATE = "CREATE TABLE items (id bigint PRIMARY KEY, name text, n integer)"


def timed(ops: int, read: Callable[[int], object], write: Callable[[int, int], object]) -> float:
    start = time.perf_counter()
    for i in range(ops):
        key = 1 + (i * 7919) % max(1, ops // 2)
        if i % 2:
            write(key, i)
        else:
            read(key)
    return time.perf_counter() - start


def raw_sqlite(path: Path, ops: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")  # as the adapter opens it: the same durability on both sides
    try:
        def read(k: int) -> object:
            return conn.execute("SELECT id, name, n FROM items WHERE id = ?", (k,)).fetchone()

        def write(k: int, i: int) -> object:
            return conn.execute("INSERT INTO items (id, name, n) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                                "name = excluded.name, n = excluded.n", (k, f"item {k}", i))
        return timed(ops, read, write)
    finally:
        conn.close()


def raw_pg(url: str, ops: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        def read(k: int) -> object:
            return conn.execute("SELECT id, name, n FROM items WHERE id = %s", (k,), prepare=True).fetchone()

        def write(k: int, i: int) -> object:
            return conn.execute("INSERT INTO items (id, name, n) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                                "name = excluded.name, n = excluded.n", (k, f"item {k}", i), prepare=True)
        return timed(ops, read, write)


def through_adapter(cfg_path: Path, ops: int) -> float:
    with open_adapter(load_config(cfg_path), "main") as a:
        a.get("items", (1,))  # connect and reflect before the clock starts, as a running app has
        return timed(ops, lambda k: a.get("items", (k,)),
                     lambda k, i: a.upsert("items", [{"id": k, "name": f"item {k}", "n": i}]))


def through_api(cfg_path: Path, ops: int) -> float:
    with Backend.from_config(cfg_path) as backend:
        db = backend.db
        db.get("items", (1,))
        return timed(ops, lambda k: db.get("items", (k,)),
                     lambda k, i: db.upsert("items", [{"id": k, "name": f"item {k}", "n": i}]))


def config(tmp: Path, url: str) -> Path:
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    return write_config(tmp, {"main": {"kind": kind, "url": url, "role": "primary"}})


def seed(execute: Callable[[str], object], insert: Callable[[list[tuple[int, str, int]]], object], rows: int) -> None:
    execute(CREATE)
    insert([(k, f"item {k}", k) for k in range(1, rows + 1)])


def measure(name: str, cfg_path: Path, raw: Callable[[int], float], ops: int, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"raw": [], "adapter": [], "api": []}
    for _ in range(rounds):  # interleaved, so the machine's load falls on all three alike
        times["raw"].append(raw(ops))
        times["adapter"].append(through_adapter(cfg_path, ops))
        times["api"].append(through_api(cfg_path, ops))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name:<10} raw {ops / med['raw']:>9,.0f} ops/s | adapter {ops / med['adapter']:>9,.0f} ops/s | "
          f"api {ops / med['api']:>9,.0f} ops/s", flush=True)
    print(f"{name:<10} API overhead over the raw client {100 * (med['api'] / med['raw'] - 1):+.0f} % "
          f"(target ≤ 10 %), over the adapter {100 * (med['api'] / med['adapter'] - 1):+.0f} %", flush=True)
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get("SHIFTOVER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    rows = max(1, args.ops // 2)
    print(f"api overhead: {args.ops:,} operations (reads and upserts by key, alternating), median of {args.rounds}")
    with tempfile.TemporaryDirectory(prefix="shiftover-api-bench-") as t:
        tmp = Path(t)
        lite = tmp / "items.db"
        with sqlite3.connect(lite) as conn:
            seed(conn.execute, lambda rs: conn.executemany("INSERT INTO items VALUES (?, ?, ?)", rs), rows)
        (tmp / "lite").mkdir()
        measure("sqlite", config(tmp / "lite", f"sqlite:///{lite}"), lambda n: raw_sqlite(lite, n), args.ops,
                args.rounds)
        name = f"shiftover_bench_api_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = args.pg.rsplit("/", 1)[0] + "/" + name
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                with conn.cursor() as cur:
                    seed(cur.execute, lambda rs: cur.executemany("INSERT INTO items VALUES (%s, %s, %s)", rs), rows)
            (tmp / "pg").mkdir()
            measure("postgresql", config(tmp / "pg", url.replace("postgresql://", "postgresql+psycopg://")),
                    lambda n: raw_pg(url, n), args.ops, args.rounds)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
