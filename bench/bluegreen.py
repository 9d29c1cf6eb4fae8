"""Blue-green PostgreSQL → PostgreSQL while a client writes: total time, freeze window, lost and duplicated records.

    python bench/bluegreen.py --rows 1000000 --writes-per-s 200 [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Makes two scratch databases on the server, seeds `items` on the first, starts a writer that inserts, updates and
deletes at the given rate over psycopg (as an app that does not use the router would), runs `migrate` with
strategy blue_green, then compares both databases row by row (md5 of each row) and checks every acknowledged write.
The scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Writer(threading.Thread):
    def __init__(self, url: str, rows: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        self.rate, self.next_id = rate, rows + 1
        self.expected: dict[int, tuple[str, int] | None] = {}  # acknowledged final state: (name, qty) or deleted
        self.live = list(range(1, rows + 1))
        self.acked = self.refused = 0
        self.stop = threading.Event()
        self.rng = random.Random(1)

    def run(self) -> None:
        period, due = 1.0 / self.rate, time.perf_counter()
        while not self.stop.is_set():
            due += period
            op = self.rng.random()
            try:
                if op < 0.4:
                    i = self.next_id
                    self.conn.execute("INSERT INTO items VALUES (%s, %s, 1, 1.50, '{}'::jsonb, now())", (i, f"new {i}"))
                    self.next_id += 1
                    self.live.append(i)
                    self.expected[i] = (f"new {i}", 1)
                elif op < 0.8:
                    i, qty = self.rng.choice(self.live), self.rng.randrange(10**6)
                    self.conn.execute("UPDATE items SET name = %s, qty = %s, updated_at = now() WHERE id = %s",
                                      (f"upd {i}", qty, i))
                    self.expected[i] = (f"upd {i}", qty)
                else:
                    idx = self.rng.randrange(len(self.live))
                    i = self.live[idx]
                    self.conn.execute("DELETE FROM items WHERE id = %s", (i,))
                    self.live[idx] = self.live[-1]
                    self.live.pop()
                    self.expected[i] = None
                self.acked += 1
            except psycopg.Error:
                self.refused += 1  # frozen or fenced: not acknowledged, so nothing to lose
            time.sleep(max(0.0, due - time.perf_counter()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--writes-per-s", type=float, default=200)
    ap.add_argument("--pg", default=os.environ.get("SHIFTOVER_TEST_PG",
                                                  "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--max-lag", type=int, default=100)
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    base = args.pg.rsplit("/", 1)[0]
    dbs = [f"shiftover_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(args.pg, autocommit=True) as admin:
        for db in dbs:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    blue, green = (f"{base}/{db}" for db in dbs)
    try:
        run(args, blue, green)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            for db in dbs:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def run(args: argparse.Namespace, blue: str, green: str) -> None:
    t = time.perf_counter()
    with psycopg.connect(blue, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty integer, price numeric(12,2), "
                     "attrs jsonb, updated_at timestamptz NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, g %% 1000, (g %% 100000) / 100.0, "
                     "jsonb_build_object('g', g, 'tag', md5(g::text)), now() FROM generate_series(1, %s) g",
                     (args.rows,))
        conn.execute("ANALYZE items")
    print(f"seeded {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="shiftover-bench-"))
    cfg = tmp / "backends.yaml"
    cfg.write_text(f"providers:\n  blue: {{kind: postgresql, url: '{blue}', role: primary}}\n"
                   f"  green: {{kind: postgresql, url: '{green}'}}\ncontrol: {{url: 'sqlite:///{tmp}/control.db'}}\n",
                   encoding="utf-8")
    from shiftover.flows.migrate import migrate

    writer = Writer(blue, args.rows, args.writes_per_s)
    writer.start()
    t = time.perf_counter()
    report = migrate(source="blue", target="green", strategy="blue_green", config_path=str(cfg),
                     max_lag=args.max_lag)
    total = time.perf_counter() - t
    time.sleep(0.5)
    writer.stop.set()
    writer.join(5)
    lost, duplicated, extra = compare(blue, green, writer)
    print(f"status            {report.status} (pointer on {report.active_after}, epoch {report.epoch_after})")
    print(f"total time        {total:.1f} s (migrate flow, incl. Prefect start-up)")
    print(f"freeze window     {report.freeze_ms:,.0f} ms")
    for note in report.notes:
        print(f"  {note}")
    print(f"writes            {writer.acked:,} acknowledged, {writer.refused:,} refused (freeze/fence)")
    print(f"lost records      {lost}")
    print(f"duplicated        {duplicated}")
    print(f"stale/extra       {extra}")
    if report.status != "switched" or lost or duplicated or extra:
        sys.exit(f"blue-green did not move every acknowledged write: status {report.status}, lost {lost}, "
                 f"duplicated {duplicated}, extra {extra}")


def compare(blue: str, green: str, writer: Writer) -> tuple[int, int, int]:
    def rows(url: str) -> dict[int, str]:
        with psycopg.connect(url) as conn:
            return dict(conn.execute("SELECT id, md5(items::text) FROM items").fetchall())

    def dupes(url: str) -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) - count(DISTINCT id) FROM items").fetchone()[0]

    b, g = rows(blue), rows(green)
    lost = sum(1 for k, v in b.items() if g.get(k) != v)
    extra = sum(1 for k in g if k not in b)
    with psycopg.connect(green) as conn:
        for key, state in writer.expected.items():
            row = conn.execute("SELECT name, qty FROM items WHERE id = %s", (key,)).fetchone()
            if (row and tuple(row)) != state and not (row is None and state is None):
                lost += 1
    return lost, dupes(green), extra


if __name__ == "__main__":
    main()
