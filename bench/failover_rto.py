"""Failover RTO/RPO on two private PostgreSQL clusters (primary + replica), with the failover monitor of
`shiftover serve` running in this process.

A writer upserts 100 records/s through the Backend router; after a few seconds the primary is stopped
(`pg_ctl stop -m immediate`), and in a second round its postmaster is killed -9. Printed per round:
RTO = time from the loss to the first successful write on the standby; RPO = acknowledged writes missing on the
standby. Modes: sync-only (the sync flow's copy every --sync-every s) and mirror (the router writes each record to
the standby before acknowledging it). Policy: the high-availability template's (monitor every 1 s, after a failed
probe the next one 0.5 s later, 3 consecutive failures, probe timeout 1.5 s; `--retry-interval 1` for the pace
before retry_interval_s existed). The replica completes one sync before the writer starts (failover never switches to
a standby not known to be in sync).

The loss falls at a different point between two of the monitor's probes in each round ((round + 0.5) / rounds of
the 1 s interval after one), as a real loss does, not always just before or just after a probe. Each round also
prints where its time went: loss → the end of the first failed probe → the monitor's decision → the switch done
(rank, lease, fence, compare-and-swap; the report's step times beside it) → the writer's router reading the new
pointer → the first acknowledged write on the standby.

Each round runs quiet and busy: busy rounds run four CPU-bound processes for the whole round and the health_sweep
flow every --sweep-every s (10 s: the shortest interval the README allows) in this process, beside the monitor, the
first one half a second after the loss (so that it runs while the monitor counts the failed probes). The
summary prints the medians of --rounds rounds, quiet beside busy; targets: RTO ≤ 3 s quiet, ≤ 5 s busy, and 0
acknowledged writes lost in mirror mode (the exit status checks the last and that every round failed over).

    .venv/bin/python bench/failover_rto.py [--rate 100] [--sync-every 5] [--modes sync-only,mirror]
        [--losses stop,kill] [--loads quiet,busy] [--rounds 3] [--before-loss 4] [--sweep-every 10]
        [--retry-interval S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PREFECT_HOME", str(Path(__file__).resolve().parent.parent / ".prefect" / "bench"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from shiftover.adapters.base import CollectionSchema, Column  # noqa: E402
from shiftover.adapters.config import Config, load_config  # noqa: E402
from shiftover.adapters.errors import BackendError  # noqa: E402
from shiftover.adapters.registry import open_adapter  # noqa: E402
from shiftover.adapters.router import Backend  # noqa: E402
from shiftover.control.store import ControlStore  # noqa: E402
from tests.fixtures_clusters import PgCluster, write_config  # noqa: E402

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text"),
                                   Column("updated_at", "timestamp")), ("id",))


TARGET_RTO_S = {"quiet": 3.0, "busy": 5.0}
MONITOR_S = 1.0  # failover.monitor_interval_s: the loss falls at (round + 0.5) / rounds of it after a probe
BUSY_PROCESSES = 4


def cpu_hogs(n: int) -> list[subprocess.Popen]:
    """n CPU-bound processes (a pure-Python loop each) until stopped."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def sweeper(config_path: str, first: float, every: float, stop: threading.Event) -> None:
    """The health_sweep flow in this process after `first` s, then every `every` s, as `shiftover serve`'s schedule
    runs it. Rounds set `first` so that a sweep runs while the monitor counts the failed probes."""
    from shiftover.flows.health_sweep import HealthSweepParams, health_sweep

    wait = first
    while not stop.wait(wait):
        started = time.monotonic()
        try:
            health_sweep(HealthSweepParams(config_path=config_path))
        except Exception as exc:  # noqa: BLE001 - a failed sweep is part of the load, not of the measure
            logging.getLogger("bench").warning("health sweep failed: %s", exc)
        swept.append(time.monotonic() - started)
        wait = max(0.0, every - (time.monotonic() - started))


swept: list[float] = []  # how long each sweep took (printed with the busy rounds)


class Timeline:
    """Monotonic times of one round's failover, from the loss to the first write on the standby: the monitor's
    probes (start, end, ok), its decision and finished switch, and when the writer's router first read the new
    pointer."""

    def __init__(self) -> None:
        self.lost = self.decided = self.switched = self.noticed = self.first_write = float("nan")
        self.probes: list[tuple[float, float, bool]] = []
        self.longest_call = 0.0  # the writer's longest single upsert after the loss
        self.loss_call = float("nan")  # how long the stop or kill command took to return

    def watch(self, monitor, control: ControlStore) -> None:
        """Wrap the monitor's probe step and failover, and the writer's control store (no change in behaviour)."""
        tick, run_failover, ensure_pointer = monitor.tick, monitor.run_failover, control.ensure_pointer

        def timed_tick():
            started, failovers = time.monotonic(), len(monitor.failovers)
            try:
                return tick()
            finally:
                ok = monitor.policy.failures == 0 and len(monitor.failovers) == failovers
                self.probes.append((started, time.monotonic(), ok))

        def timed_failover(**params):
            self.decided = time.monotonic() if self.decided != self.decided else self.decided
            report = run_failover(**params)
            self.switched = time.monotonic() if self.switched != self.switched else self.switched
            return report

        def seen_pointer(*args, **kwargs):
            pointer = ensure_pointer(*args, **kwargs)
            if pointer.provider != "primary" and self.noticed != self.noticed:
                self.noticed = time.monotonic()
            return pointer

        monitor.tick, monitor.run_failover, control.ensure_pointer = timed_tick, timed_failover, seen_pointer

    def phases(self) -> dict[str, float]:
        """Seconds: loss → first failed probe's end → decision → switch done → router saw it → first write."""
        failed = [end for start, end, ok in self.probes if not ok and end >= self.lost]
        first_failed = failed[0] if failed else float("nan")
        return {"to_first_failed_probe": first_failed - self.lost, "to_decision": self.decided - first_failed,
                "to_switch": self.switched - self.decided, "to_router": self.noticed - self.switched,
                "to_first_write": self.first_write - self.noticed}


def syncer(cfg: Config, control: ControlStore, stop: threading.Event, sync_every: float) -> None:
    """Sync the replica every `sync_every` s while the primary is active (what `shiftover serve` would do)."""
    from shiftover.tasks.sync import sync_pair

    while not stop.wait(sync_every):
        if control.pointer().provider == "primary":
            try:
                sync_pair(cfg, control, "primary", "replica", overlap_s=2)
            except BackendError:
                pass


def one_round(root: Path, a: PgCluster, b: PgCluster, *, mode: str, loss: str, rate: float, sync_every: float,
              before_loss: float = 4.0, load: str = "quiet", sweep_every: float = 10.0, retry_s: float | None = None,
              phase: float = 0.0):
    """One loss, `before_loss` s after the monitor's first probe: give it a fraction of the monitor's interval (the
    phase of the loss against the probes) so that rounds do not all lose the primary just before, or just after, a
    probe."""
    from shiftover.service.process import Monitor
    from shiftover.tasks.sync import sync_pair

    a.reset()
    b.reset()
    work = Path(tempfile.mkdtemp(dir=root))
    cfg = load_config(write_config(work, {
        "primary": {"kind": "postgresql", "url": a.url, "role": "primary", "priority": 1,
                    "options": {"connect_timeout_s": 1}},
        "replica": {"kind": "postgresql", "url": b.url, "role": "standby", "priority": 2,
                    "options": {"connect_timeout_s": 1}},
    }, health={"timeout_s": 1.5}, failover={"consecutive_failures": 3, "monitor_interval_s": MONITOR_S,
                                            "cooldown_s": 120, "router_follow_s": 2,
                                            **({} if retry_s is None else {"retry_interval_s": retry_s})}))
    control = ControlStore(cfg.control.url.get_secret_value())
    control.ensure_pointer("primary")
    for name in ("primary", "replica"):
        with open_adapter(cfg, name) as ad:
            ad.create_collection(ITEMS)
    sync_pair(cfg, control, "primary", "replica")  # the replica is in sync before the writer starts
    stop = threading.Event()
    acked: list[int] = []
    after_loss: list[tuple[float, str]] = []
    lost_at: list[float] = []
    timeline = Timeline()
    writer_control = ControlStore(cfg.control.url.get_secret_value())

    def writer() -> None:
        with Backend(cfg, mirror=(mode == "mirror"), control=writer_control) as be:
            n, period = 0, 1 / rate
            next_at = time.monotonic()
            while not stop.is_set():
                called = time.monotonic()
                try:
                    be.upsert("items", [{"id": n, "v": "w", "updated_at": dt.datetime.now(dt.timezone.utc)}])
                except BackendError:
                    time.sleep(0.02)
                    continue  # retry the same record: not acknowledged
                finally:
                    if lost_at and not after_loss:
                        timeline.longest_call = max(timeline.longest_call, time.monotonic() - called)
                acked.append(n)
                if lost_at and not after_loss and be.active != "primary":
                    after_loss.append((time.monotonic(), be.active))
                n += 1
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

    monitor = Monitor(str(cfg.path))
    timeline.watch(monitor, writer_control)
    threads = [threading.Thread(target=writer, daemon=True),
               threading.Thread(target=syncer, args=(cfg, control, stop, sync_every), daemon=True)]
    hogs = cpu_hogs(BUSY_PROCESSES) if load == "busy" else []
    sweeps_before = len(swept)
    if load == "busy":
        threads.append(threading.Thread(target=sweeper, args=(str(cfg.path), before_loss + 0.5, sweep_every, stop),
                                        daemon=True))
    try:
        for t in threads:
            t.start()
        monitor.start(stop)
        time.sleep(before_loss + phase)
        lost_at.append(time.monotonic())
        timeline.lost = lost_at[0]
        a.stop() if loss == "stop" else a.kill9()
        timeline.loss_call = time.monotonic() - timeline.lost
        deadline = time.monotonic() + 30
        while not after_loss and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)
    finally:
        stop.set()
        for hog in hogs:
            hog.kill()
            hog.wait()
    for t in threads:
        t.join(30)
    writer_control.close()
    timeline.first_write = after_loss[0][0] if after_loss else float("nan")
    held = {r[0] for r in b.execute("SELECT id FROM items")}
    missing = [i for i in acked if i not in held]
    report = monitor.failovers[0] if monitor.failovers else None
    rto = after_loss[0][0] - lost_at[0] if after_loss else float("nan")
    return {
        "sweeps": len(swept) - sweeps_before,
        "mode": mode, "loss": loss, "load": load, "rto_s": rto,
        "first_write_on": after_loss[0][1] if after_loss else "-",
        "detect_to_switch_s": getattr(report, "detect_to_switch_s", None), "acked": len(acked),
        "lost_acked": len(missing), "phases": timeline.phases(), "longest_call_s": timeline.longest_call,
        "loss_call_s": timeline.loss_call, "switch_steps_s": getattr(report, "step_s", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--sync-every", type=float, default=5)
    parser.add_argument("--modes", default="sync-only,mirror", help="comma-separated: sync-only, mirror")
    parser.add_argument("--losses", default="stop,kill", help="comma-separated: stop (immediate), kill (-9)")
    parser.add_argument("--loads", default="quiet,busy", help=f"comma-separated: quiet, busy ({BUSY_PROCESSES} "
                        "CPU-bound processes and the health sweep every --sweep-every s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode, loss and load (medians printed)")
    parser.add_argument("--before-loss", type=float, default=4.0, help="seconds of writes before the loss")
    parser.add_argument("--sweep-every", type=float, default=10.0, help="busy rounds: seconds between health sweeps")
    parser.add_argument("--retry-interval", type=float, default=None,
                        help="failover.retry_interval_s (default: the configuration's default); 1 keeps the monitor's "
                             "1 s pace after a failure too, as before that setting existed")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    losses = [{"kill": "kill -9"}.get(x.strip(), x.strip()) for x in args.losses.split(",") if x.strip()]
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    if not set(modes) <= {"sync-only", "mirror"} or not set(losses) <= {"stop", "kill -9"} \
            or not set(loads) <= {"quiet", "busy"} or args.rounds < 1:
        parser.error("--modes takes sync-only,mirror, --losses stop,kill, --loads quiet,busy, --rounds ≥ 1")
    logging.basicConfig(level=logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="shiftover-bench-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    os.chmod(root, 0o777)
    a, b = PgCluster(root, "a"), PgCluster(root, "b")
    rows = []
    try:
        for c in (a, b):
            c.init()
        from shiftover.flows.failover import FailoverParams, failover  # warm the Prefect API up before measuring

        warm = write_config(Path(tempfile.mkdtemp(dir=root)), {"x": {"kind": "memory", "role": "primary"},
                                                               "y": {"kind": "memory", "role": "standby"}})
        failover(FailoverParams(config_path=str(warm), dry_run=True))
        if "busy" in loads:  # as in a serve that has been running: the sweep flow has run before
            from shiftover.flows.health_sweep import HealthSweepParams, health_sweep

            health_sweep(HealthSweepParams(config_path=str(warm)))
        for n in range(args.rounds):  # quiet and busy side by side in each round
            for mode in modes:
                for loss in losses:
                    for load in loads:
                        r = one_round(root, a, b, mode=mode, loss=loss, rate=args.rate, sync_every=args.sync_every,
                                      before_loss=args.before_loss, load=load, sweep_every=args.sweep_every,
                                      retry_s=args.retry_interval, phase=(n + 0.5) / args.rounds * MONITOR_S)
                        rows.append(r)
                        print_round(n, r)
    finally:
        for c in (a, b):
            c.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary(rows, loads, args.rounds)
    failed = [r for r in rows if r["first_write_on"] != "replica" or (r["mode"] == "mirror" and r["lost_acked"] > 0)]
    if failed:
        sys.exit(f"{len(failed)} round(s) did not fail over to the replica, or mirror mode lost an acknowledged write")


def print_round(n: int, r: dict) -> None:
    print(f"round {n + 1} | {r['mode']:>9} | {r['loss']:>7} | {r['load']:>5} | RTO {r['rto_s']:5.2f} s "
          f"(first write on {r['first_write_on']}; first failed probe → switch "
          f"{r['detect_to_switch_s'] or float('nan'):.2f} s) | acknowledged {r['acked']:5d} | "
          f"lost acknowledged writes (RPO) {r['lost_acked']}"
          + (f" | health sweeps {r['sweeps']}" if r["load"] == "busy" else ""), flush=True)
    print("        " + " → ".join(f"{k.removeprefix('to_').replace('_', ' ')} +{v:.2f}" for k, v in r["phases"].items())
          + f" s (each after the one before, from the loss; the {r['loss']} command took {r['loss_call_s']:.2f} s, "
          f"the writer's longest call {r['longest_call_s']:.2f} s)"
          + ("; the switch's steps: " + ", ".join(f"{k} {v:.2f}" for k, v in r["switch_steps_s"].items())
             if r["switch_steps_s"] else ""), flush=True)


def summary(rows: list[dict], loads: list[str], rounds: int) -> None:
    """Medians per mode and loss, quiet beside busy, each against its target."""
    def med(values: list[float]) -> float:
        values = [v for v in values if v == v]
        return statistics.median(values) if values else float("nan")

    targets = " · ".join(f"RTO {load} (target ≤ {TARGET_RTO_S[load]:g} s)" for load in loads)
    print(f"\nmedians of {rounds} round(s): {targets}")
    for key in dict.fromkeys((r["mode"], r["loss"]) for r in rows):
        cells = []
        for load in loads:
            these = [r for r in rows if (r["mode"], r["loss"], r["load"]) == (*key, load)]
            rto = med([r["rto_s"] for r in these])
            switch = med([r["detect_to_switch_s"] if r["detect_to_switch_s"] is not None else float("nan")
                          for r in these])
            verdict = "met" if rto <= TARGET_RTO_S[load] else "MISSED"
            worst = max((r["rto_s"] for r in these), default=float("nan"))
            steps = ", ".join(f"{k.removeprefix('to_').replace('_', ' ')} {med([r['phases'][k] for r in these]):.2f}"
                              for k in these[0]["phases"]) if these else ""
            cells.append(f"{load} RTO {rto:5.2f} s ({verdict}; worst {worst:4.2f} s; probe → switch {switch:4.2f} s; "
                         f"lost acknowledged {max(r['lost_acked'] for r in these)}; steps {steps})")
        print(f"{key[0]:>9} | {key[1]:>7} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
