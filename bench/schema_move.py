"""The schema around the rows: Shiftover's schema phases beside `pgcopydb clone` of the same database, same run.

    python bench/schema_move.py [--tables 200] [--rows 20] [--rounds 3]

Builds a source database of `--tables` tables, each with a serial key, a unique column, a CHECK, a secondary index,
a foreign key to the previous table, row level security with a policy, and grants to a role — and a few rows each.
Each round clones it into a fresh database with `pgcopydb clone --table-jobs 2 --index-jobs 2 --no-owner` (Debian
package pgcopydb; schema, data, indexes, constraints, sequences, vacuum), and migrates it into another fresh database
with `shiftover migrate --strategy immediate` (a child process; the flow reports its phases). Printed per round and
for the median round: pgcopydb's whole clone, Shiftover's schema phases (`plan`: the source's collections and its
`pg_dump --schema-only`; `schema`: pre-data restore; `index`: post-data restore with 2 jobs + sequences),
Shiftover's whole flow (copy, digests and the gate included: pgcopydb validates nothing), and the ratio schema phases
÷ pgcopydb (target ≤ 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from migrate_pg import ROOT, admin, fresh_db  # noqa: E402

ROLE = "shiftover_bench_app"


def seed(url: str, tables: int, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
                     .format(sql.Identifier(ROLE)))
        for i in range(tables):
            t, prev = sql.Identifier(f"t{i:03d}"), sql.Identifier(f"t{i - 1:03d}")
            ref = sql.SQL(", parent_id bigint REFERENCES {} ON DELETE SET NULL").format(prev) if i else sql.SQL("")
            conn.execute(sql.SQL(
                "CREATE TABLE {t} (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, amount numeric(12,2) "
                "CHECK (amount >= 0), owner text NOT NULL DEFAULT current_user, created_at timestamptz NOT NULL "
                "DEFAULT now(){ref})").format(t=t, ref=ref))
            conn.execute(sql.SQL("CREATE INDEX ON {} (created_at)").format(t))
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(t))
            conn.execute(sql.SQL("CREATE POLICY own ON {} USING (owner = current_user)").format(t))
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(t, sql.Identifier(ROLE)))
            conn.execute(sql.SQL("INSERT INTO {} (code, amount) SELECT 'c' || g, g FROM generate_series(1, %s) g")
                         .format(t), (rows,))


def pgcopydb(src: str, dst: str, work: Path) -> float | None:
    """Seconds of `pgcopydb clone`; None when pgcopydb is not installed (Debian package pgcopydb)."""
    exe = shutil.which("pgcopydb") or "/usr/lib/postgresql/15/bin/pgcopydb"
    if not Path(exe).exists():
        return None
    start = time.perf_counter()
    subprocess.run([exe, "clone", "--source", src, "--target", dst, "--dir", str(work / "pgcopydb"),
                    "--table-jobs", "2", "--index-jobs", "2", "--no-owner", "--skip-extensions", "--notice"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def shiftover(src: str, dst: str, work: Path, home: Path) -> tuple[float, dict]:
    to_sa = lambda u: u.replace("postgresql://", "postgresql+psycopg://", 1)  # noqa: E731
    cfg = work / "backends.yaml"
    cfg.write_text(json.dumps({"providers": {"src": {"kind": "postgresql", "url": to_sa(src), "role": "primary"},
                                             "dst": {"kind": "postgresql", "url": to_sa(dst)}},
                               "control": {"url": f"sqlite:///{work}/control.db"},
                               "migration": {"workers": 2}}))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    start = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv/bin/shiftover"), "migrate", "src", "dst", "--config", str(cfg), "--json"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"shiftover migrate failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--rows", type=int, default=20, help="rows per table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default=os.environ.get("SHIFTOVER_BENCH_PG",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]  # several benches (or sessions) may share the server
    names = {k: f"shiftover_bench_schema_{k}_{tag}" for k in ("src", "peer", "dst")}
    try:
        run(args, names)
    finally:
        admin(args.pg, *[sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(n))
                         for n in names.values()])


def run(args: argparse.Namespace, names: dict[str, str]) -> None:
    src = fresh_db(args.pg, names["src"])
    t = time.perf_counter()
    seed(src, args.tables, args.rows)
    print(f"seeded {args.tables} tables × {args.rows} rows in {time.perf_counter() - t:.1f} s")
    rounds = []
    with tempfile.TemporaryDirectory() as keep:
        home = Path(keep) / "prefect"  # one PREFECT_HOME for every round, as a user's installation keeps it
        for n in range(1, args.rounds + 1):
            with tempfile.TemporaryDirectory() as tmp:
                peer = pgcopydb(src, fresh_db(args.pg, names["peer"]), Path(tmp))
            with tempfile.TemporaryDirectory() as tmp:
                wall, report = shiftover(src, fresh_db(args.pg, names["dst"]), Path(tmp), home)
            assert report["status"] == "switched", report["error"]
            phases = report["phase_seconds"]
            ours = sum(phases.get(k, 0.0) for k in ("plan", "schema", "index"))
            if peer is None:
                print("pgcopydb is not installed (Debian package pgcopydb): Shiftover's side only")
                peer = float("nan")
            rounds.append((ours / peer, peer, ours, report["seconds"], wall, phases))
            print(f"round {n}: pgcopydb clone {peer:.2f} s · shiftover schema phases {ours:.2f} s "
                  f"(ratio {ours / peer:.2f}) · shiftover flow {report['seconds']:.2f} s · whole command {wall:.2f} s")
    ratio, peer, ours, flow_s, wall, phases = sorted(rounds, key=lambda r: (r[0], r[2]))[len(rounds) // 2]
    print(f"median round of {len(rounds)} ({args.tables} tables):")
    print(f"pgcopydb clone (schema, data, indexes, vacuum):   {peer:7.2f} s")
    print(f"shiftover schema phases (plan+dump, pre, post):   {ours:7.2f} s   ratio {ratio:.2f}  (target ≤ 1.0)")
    print(f"shiftover flow (schema, copy, digests, gate):     {flow_s:7.2f} s")
    print(f"shiftover whole command:                          {wall:7.2f} s")
    print("flow phases: " + " · ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(f"ratios of all rounds: {', '.join(f'{r[0]:.2f}' for r in rounds)} "
          f"(median {statistics.median(r[0] for r in rounds):.2f})")


if __name__ == "__main__":
    main()
