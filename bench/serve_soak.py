"""`shiftover serve` left running: memory and CPU of its whole process tree, overlapping runs, false "down".

    python bench/serve_soak.py [--minutes 30] [--rows 200000] [--sweep-interval 10] [--sync-interval 30]
                               [--writes-per-s 20] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Makes three scratch databases on the server (a primary seeded with `items`, a PostgreSQL standby, the control store)
and a SQLite standby: the shape and the health/failover settings of the high-availability template. Runs
`shiftover serve` with the monitor on, sweeps every --sweep-interval and sync every --sync-interval, while a writer
inserts and updates `items` on the primary at --writes-per-s (as an app that does not use the router). Every second it
samples the resident memory and CPU time of serve's process tree (serve and every child it starts). Then it triggers
the `migrate` deployment through the API, as the UI does (a dry run), and times creation → Running.

Prints the peak RSS of the tree (target ≤ 1 GB), the mean CPU as a percentage of one core (target ≤ 25 %), the runs
of each scheduled deployment that overlapped (must be 0) and the providers reported down (must be 0: they all stay
up); exits 1 when either of the last two is not 0. The Prefect API is PREFECT_API_URL when set, else a
`prefect server start` of its own (not part of serve's tree; its figures are printed apart). Scratch databases and
processes are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.fixtures_clusters import free_port  # noqa: E402 - after the path is set
from tests.helpers import stop_group as stop  # noqa: E402

SCHEDULED = ("health_sweep/health-sweep", "sync/sync")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{url} did not answer:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


class Tree:
    """RSS and CPU time of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        self.root, self.every_s = psutil.Process(pid), every_s
        self.peak_rss = self.peak_procs = 0
        self.rss: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, float, int]:
        rss, cpu, procs = 0, 0.0, 0
        for p in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()  # children_*: CPU of children already reaped
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
                procs += 1
        return rss, cpu, procs

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            rss, _, procs = self.sample()
            self.rss.append(rss)
            self.peak_rss, self.peak_procs = max(self.peak_rss, rss), max(self.peak_procs, procs)

    def __enter__(self) -> Tree:
        self.t0, (_, self.cpu0, _) = time.monotonic(), self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.wall, self.cpu = time.monotonic() - self.t0, self.sample()[1] - self.cpu0


class Writer(threading.Thread):
    def __init__(self, url: str, rows: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.rows, self.rate = url, rows, rate
        self.acked = self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        period, due, next_id = 1.0 / self.rate, time.perf_counter(), self.rows + 1
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                due += period
                try:
                    if next_id % 2:
                        conn.execute("INSERT INTO items VALUES (%s, %s, 1, now())", (next_id, f"new {next_id}"))
                    else:
                        conn.execute("UPDATE items SET qty = qty + 1, updated_at = now() WHERE id = %s",
                                     (next_id % self.rows + 1,))
                    next_id += 1
                    self.acked += 1
                except psycopg.Error:
                    self.failed += 1
                time.sleep(max(0.0, due - time.perf_counter()))


class HealthWatch(threading.Thread):
    """Every state a provider is put in by the sweeps, read from the control store every second."""

    def __init__(self, control_url: str, providers: list[str]) -> None:
        super().__init__(daemon=True)
        self.control_url, self.providers = control_url, providers
        self.states: dict[str, list[str]] = {p: [] for p in providers}
        self.errors: dict[str, str] = {}  # provider: the last failed probe's error when it was reported down
        self.stop = threading.Event()

    def run(self) -> None:
        from shiftover.control.store import ControlStore

        with ControlStore(self.control_url) as control:
            while not self.stop.wait(1.0):
                for p in self.providers:
                    state = control.health_state(p)
                    if state and (not self.states[p] or self.states[p][-1] != state):
                        self.states[p].append(state)
                        if state == "down":
                            failed = [r for r in control.probes(p, limit=5) if not r.ok]
                            self.errors[p] = failed[0].error if failed else "?"

    def reported(self, state: str) -> dict[str, int]:
        return {p: s.count(state) for p, s in self.states.items() if state in s}


@contextlib.contextmanager
def databases(admin_url: str, n: int) -> Iterator[list[str]]:
    names = [f"shiftover_soak_{uuid.uuid4().hex[:8]}" for _ in range(n)]
    base = admin_url.rsplit("/", 1)[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for db in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        yield [f"{base}/{db}" for db in names]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for db in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def write_config(tmp: Path, primary: str, replica: str, control: str, sweep_s: float,
                 timeout_s: float = 1.5) -> Path:
    alchemy = lambda url: url.replace("postgresql://", "postgresql+psycopg://", 1)  # noqa: E731
    path = tmp / "backends.yaml"
    path.write_text(f"""providers:
  primary: {{kind: postgresql, url: '{alchemy(primary)}', role: primary, priority: 1}}
  replica: {{kind: postgresql, url: '{alchemy(replica)}', role: standby, priority: 2}}
  local: {{kind: sqlite, url: 'sqlite:///{tmp / "standby.db"}', role: standby, priority: 9}}
control: {{url: '{alchemy(control)}'}}
health: {{timeout_s: {timeout_s:g}, response_time_ms: 500, error_rate: 0.05, availability: 0.995, window_s: 300,
          canary: true, history_days: 30, debounce: 2}}
failover: {{enabled: true, consecutive_failures: 3, monitor_interval_s: 1, sweep_interval_s: {sweep_s:g},
            cooldown_s: 120, fallback: [replica, local], failback: manual}}
""", encoding="utf-8")
    return path


def flow_runs(api: str, deployment: str) -> list:
    """Every run of `deployment` that is no longer only scheduled (future scheduled runs are left out), page by page."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    began = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
        any_=[t for t in StateType if t != StateType.SCHEDULED])))

    async def read() -> list:
        found: list = []
        async with get_client() as client:
            dep = await client.read_deployment_by_name(deployment)
            while True:
                page = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])), flow_run_filter=began,
                    limit=200, offset=len(found))
                found += page
                if len(page) < 200:
                    return found

    with temporary_settings({PREFECT_API_URL: api}):
        runs: list = asyncio.run(read())
    return runs


def overlaps(runs: list) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    spans = sorted((r.start_time, r.end_time or now) for r in runs if r.run_count > 0 and r.start_time)
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False) if start < end)


def trigger_migrate(api: str, config: Path, timeout_s: float = 180) -> tuple[float | None, str]:
    """Create a `migrate` run as the UI's Run button does; seconds from creation to Running, and its final state."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go() -> tuple[float | None, str]:
        async with get_client() as client:
            dep = await client.read_deployment_by_name("migrate/migrate")
            params = {"source": "primary", "target": "local", "dry_run": True, "config_path": str(config)}
            run = await client.create_flow_run_from_deployment(dep.id, parameters=params)
            created, running_after = time.monotonic(), None
            while time.monotonic() - created < timeout_s:
                state = (await client.read_flow_run(run.id)).state
                if running_after is None and state and (state.is_running() or state.is_final()):
                    running_after = time.monotonic() - created
                if state and state.is_final():
                    return running_after, state.name
                await asyncio.sleep(0.2)
            return running_after, "not finished"

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--sweep-interval", type=float, default=10)
    ap.add_argument("--sync-interval", type=float, default=30)
    ap.add_argument("--health-timeout", type=float, default=1.5,
                    help="health.timeout_s (the high-availability template's 1.5 s by default)")
    ap.add_argument("--writes-per-s", type=float, default=20)
    ap.add_argument("--pg", default=os.environ.get("SHIFTOVER_TEST_PG",
                                                  "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shiftover-soak-"))
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING")}
    with databases(args.pg, 3) as (primary, replica, control), contextlib.ExitStack() as procs:
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty integer, "
                         "updated_at timestamptz NOT NULL)")
            conn.execute("INSERT INTO items SELECT g, 'item ' || g, g %% 1000, now() FROM generate_series(1, %s) g",
                         (args.rows,))
        config = write_config(tmp, primary, replica, control, args.sweep_interval, args.health_timeout)
        api, server = os.environ.get("PREFECT_API_URL"), None
        if not api:
            port = free_port()
            api = f"http://127.0.0.1:{port}/api"
            server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                       str(port)], env={**env, "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": ""},
                                      stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                      start_new_session=True)
            procs.callback(stop, server)
            wait_for(f"{api}/health", server, tmp / "server.log")
        http = free_port()
        serve = subprocess.Popen([str(BIN / "shiftover"), "serve", "--config", str(config), "--port", str(http),
                                  "--sweep-interval", f"{args.sweep_interval:g}", "--sync-interval",
                                  f"{args.sync_interval:g}"], env={**env, "PREFECT_API_URL": api},
                                 stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                 start_new_session=True)
        procs.callback(stop, serve)
        wait_for(f"http://127.0.0.1:{http}/healthz", serve, tmp / "serve.log")
        writer, watch = Writer(primary, args.rows, args.writes_per_s), HealthWatch(
            control.replace("postgresql://", "postgresql+psycopg://", 1), ["primary", "replica", "local"])
        writer.start()
        watch.start()
        with Tree(serve.pid) as tree, (Tree(server.pid) if server else contextlib.nullcontext()) as api_tree:
            time.sleep(args.minutes * 60)
        runs = {name: flow_runs(api, name) for name in SCHEDULED}
        pickup, migrate_state = trigger_migrate(api, config)
        writer.stop.set()
        watch.stop.set()
        alive = serve.poll() is None
    report(args, tree, api_tree, runs, watch, writer, pickup, migrate_state, alive, tmp)


def trend_mb_per_min(samples: list[int], every_s: float) -> float:
    """Least-squares slope of the second half of the RSS samples: a leak shows as a steady climb."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return 0.0
    n, mean_x, mean_y = len(half), (len(half) - 1) / 2, sum(half) / len(half)
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(half)) / sum((i - mean_x) ** 2 for i in range(n))
    return slope / every_s * 60 / 1024 ** 2


def report(args: argparse.Namespace, tree: Tree, api_tree: Tree | None, runs: dict[str, list], watch: HealthWatch,
           writer: Writer, pickup: float | None, migrate_state: str, alive: bool, tmp: Path) -> None:
    gb = 1024 ** 3
    cpu = 100 * tree.cpu / tree.wall
    print(f"serve soak: {tree.wall / 60:.1f} min, {args.rows:,} rows, sweeps every {args.sweep_interval:g} s, "
          f"sync every {args.sync_interval:g} s, writer {writer.acked:,} writes ({writer.failed} failed)")
    print(f"peak RSS of serve's process tree   {tree.peak_rss / gb:.2f} GB (target ≤ 1 GB; "
          f"{tree.peak_procs} process(es) at most; last {tree.rss[-1] / gb if tree.rss else 0:.2f} GB)")
    print(f"RSS trend over the second half     {trend_mb_per_min(tree.rss, tree.every_s):+.2f} MB/min")
    print(f"mean CPU of serve's process tree   {cpu:.1f} % of one core (target ≤ 25 %)")
    if api_tree is not None:
        print(f"Prefect API server (apart)         peak {api_tree.peak_rss / gb:.2f} GB, "
              f"{100 * api_tree.cpu / api_tree.wall:.1f} % of one core")
    overlapping = 0
    for name, found in runs.items():
        states: dict[str, int] = {}
        for r in found:
            states[r.state_name or "?"] = states.get(r.state_name or "?", 0) + 1
        overlapping += overlaps(found)
        print(f"{name:<34} {overlaps(found)} overlapping; " + ", ".join(f"{v} {k}" for k, v in sorted(states.items())))
    print(f"overlapping runs of one deployment {overlapping}")
    down = watch.reported("down")
    print(f"false \"down\"                       {sum(down.values())}" + (f" {down}" if down else "")
          + f"; states seen: {watch.states}" + (f"; errors: {watch.errors}" if watch.errors else ""))
    print(f"UI-triggered migrate               creation → Running "
          f"{'never' if pickup is None else f'{pickup:.1f} s'}; ended {migrate_state}")
    if not alive:
        print(f"serve exited early; its log: {tmp / 'serve.log'}")
    if overlapping or down or not alive or pickup is None:
        sys.exit(f"serve soak failed: {overlapping} overlapping runs, {sum(down.values())} false down, "
                 f"serve {'alive' if alive else 'exited'}, migrate {'not ' if pickup is None else ''}picked up")


if __name__ == "__main__":
    main()
