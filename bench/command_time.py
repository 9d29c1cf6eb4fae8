"""What a user waits for: the whole `shiftover migrate` command beside `pgcopydb clone`, and `status`/`health`.

    .venv/bin/python bench/command_time.py [--rows 1000000] [--rounds 3] [--modes cold,warm,api] [--api URL]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

The 1M-row table of bench/migrate_pg.py in a fresh source database; each round, into fresh databases:
- `pgcopydb clone --table-jobs 2 --index-jobs 2 --no-owner --no-acl --skip-extensions` (Debian package pgcopydb;
  skipped with a note when it is not installed): schema, data, key, vacuum;
- `shiftover migrate src dst --strategy immediate --json` as a separate process, three ways:
  cold  — a fresh PREFECT_HOME and no running server (Prefect's temporary server creates its database);
  warm  — a persistent PREFECT_HOME after one warm-up command, no running server (the temporary server starts);
  api   — the same PREFECT_HOME while `shiftover serve` runs (the command reuses the server serve registered),
          or with PREFECT_API_URL=--api when given;
- `shiftover status` and `shiftover health` on the warm PREFECT_HOME, with and without the running server.
Medians over the rounds are printed with rows/s and the ratio to pgcopydb. Every migration must end `switched`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from migrate_pg import admin, fresh_db, seed  # noqa: E402 - the same table, seeded the same way

SHIFTOVER = str(ROOT / ".venv" / "bin" / "shiftover")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the bench decides which API runs
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING",
               COLUMNS="200")
    return env


def write_config(work: Path, src: str, dst: str) -> Path:
    sa = lambda u: u.replace("postgresql://", "postgresql+psycopg://", 1)  # noqa: E731
    cfg = work / f"backends-{uuid.uuid4().hex[:6]}.yaml"
    cfg.write_text(json.dumps({"providers": {"src": {"kind": "postgresql", "url": sa(src), "role": "primary"},
                                             "dst": {"kind": "postgresql", "url": sa(dst), "role": "none"}},
                               "control": {"url": f"sqlite:///{cfg.with_suffix('.db')}"},
                               "migration": {"chunk_rows": 250_000, "workers": 2}}), encoding="utf-8")
    return cfg


def timed(args: list[str], env: dict[str, str], *, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def migrate(cfg: Path, env: dict[str, str]) -> tuple[float, float]:
    wall, stdout = timed([SHIFTOVER, "migrate", "src", "dst", "--config", str(cfg), "--json"], env)
    report = json.loads(stdout)
    if report["status"] != "switched":
        sys.exit(f"shiftover migrate did not switch: {report['status']} {report.get('error')}")
    return wall, report["seconds"]


def pgcopydb(src: str, dst: str, work: Path) -> float | None:
    if shutil.which("pgcopydb") is None:
        return None
    workdir = work / f"pgcopydb-{uuid.uuid4().hex[:6]}"
    start = time.perf_counter()
    proc = subprocess.run(["pgcopydb", "clone", "--source", src, "--target", dst, "--table-jobs", "2",
                           "--index-jobs", "2", "--no-owner", "--no-acl", "--skip-extensions", "--dir", str(workdir)],
                          capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"pgcopydb clone failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(workdir, ignore_errors=True)
    return seconds


class Serve:
    """`shiftover serve` with schedules far apart: only its Prefect server matters here."""

    def __init__(self, cfg: Path, env: dict[str, str], log: Path) -> None:
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.port = free_port()
        self.proc = subprocess.Popen([SHIFTOVER, "serve", "--config", str(cfg), "--port", str(self.port),
                                      "--api-port", str(free_port()), "--no-monitor", "--sweep-interval", "86400",
                                      "--sync-interval", "86400"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        registry = Path(env["PREFECT_HOME"]) / "shiftover-api.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"shiftover serve exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    if registry.exists():
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        sys.exit("shiftover serve did not come up within 300 s")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="cold,warm,api", help="comma-separated: cold, warm, api")
    parser.add_argument("--api", help="for 'api': this running Prefect API instead of starting `shiftover serve`")
    parser.add_argument("--pg", default=os.environ.get("SHIFTOVER_BENCH_PG",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not modes or not modes <= {"cold", "warm", "api"}:
        parser.error("--modes takes cold, warm and api")
    tag = uuid.uuid4().hex[:6]
    names: list[str] = []

    def db(kind: str) -> str:
        name = f"shiftover_bench_{kind}_{tag}_{len(names)}"
        names.append(name)
        return fresh_db(args.pg, name)

    work = Path(tempfile.mkdtemp(prefix="shiftover-bench-cmd-"))
    times: dict[str, list[float]] = {k: [] for k in (
        "pgcopydb", "cold", "warm", "api", "flow", "status", "health_warm", "health_api")}
    serve: Serve | None = None
    try:
        src = db("src")
        t = time.perf_counter()
        seed(src, args.rows)
        print(f"seeded {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
        home = work / "prefect-home"  # persistent over the rounds, as a user's ~/.prefect is
        warm_env = env_for(home)
        api_env = {**warm_env, "PREFECT_API_URL": args.api} if args.api else warm_env
        cfg = write_config(work, src, db("dst"))
        timed([SHIFTOVER, "health", "--config", str(cfg)], warm_env if "warm" in modes else api_env, ok=(0, 1))
        for n in range(1, args.rounds + 1):
            copied = pgcopydb(src, db("pgcopydb"), work)
            if copied is not None:
                times["pgcopydb"].append(copied)
            if "cold" in modes:
                times["cold"].append(migrate(write_config(work, src, db("dst")), env_for(work / f"cold-{n}"))[0])
            times["status"].append(timed([SHIFTOVER, "status", "--config", str(cfg)], warm_env)[0])
            if "warm" in modes:
                wall, flow = migrate(write_config(work, src, db("dst")), warm_env)
                times["warm"].append(wall)
                times["flow"].append(flow)
                times["health_warm"].append(timed([SHIFTOVER, "health", "--config", str(cfg)], warm_env,
                                                  ok=(0, 1))[0])
            if "api" in modes:
                serve = None if args.api else Serve(cfg, warm_env, work / f"serve-{n}.log")
                wall, flow = migrate(write_config(work, src, db("dst")), api_env)
                times["api"].append(wall)
                times["flow"].append(flow)
                times["health_api"].append(timed([SHIFTOVER, "health", "--config", str(cfg)], api_env,
                                                 ok=(0, 1))[0])
                if serve is not None:
                    serve.stop()
                    serve = None
            last = {k: f"{v[-1]:.2f} s" if v else "-" for k, v in times.items()}
            print(f"round {n}: pgcopydb {last['pgcopydb']} · migrate cold {last['cold']} · warm {last['warm']} · "
                  f"with a running API {last['api']} · flow {last['flow']} · status {last['status']} · health "
                  f"{last['health_warm']} / {last['health_api']}", flush=True)
    finally:
        if serve is not None:
            serve.stop()
        admin(args.pg, *[sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                         for name in names])
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    rows = args.rows
    print(f"medians of {args.rounds} round(s), {rows:,} rows:")
    base = med.get("pgcopydb")
    if base is None:
        print("pgcopydb clone --table-jobs 2 --index-jobs 2:   not installed (apt-get install -y pgcopydb); skipped")
    else:
        print(f"pgcopydb clone --table-jobs 2 --index-jobs 2: {base:7.2f} s  {rows / base:12,.0f} rows/s")
    for key, label in (("cold", "shiftover migrate, cold (fresh PREFECT_HOME)"),
                       ("warm", "shiftover migrate, warm (temporary server)"),
                       ("api", "shiftover migrate, with a running API"),
                       ("flow", "  of which the flow itself")):
        if key not in med:
            continue
        ratio = f"  = {base / med[key]:.2f} × pgcopydb's rate" if base else ""
        print(f"{label:<45} {med[key]:7.2f} s  {rows / med[key]:12,.0f} rows/s{ratio}")
    print(f"shiftover status (warm, no Prefect)           {med['status']:7.2f} s   (target ≤ 1 s)")
    if "health_warm" in med:
        print(f"shiftover health (warm, temporary server)     {med['health_warm']:7.2f} s")
    if "health_api" in med:
        print(f"shiftover health (with a running API)         {med['health_api']:7.2f} s   (target ≤ 2 s)")


if __name__ == "__main__":
    main()
