"""Failover RTO/RPO on two private PostgreSQL clusters (primary + replica), with the failover monitor of
`shiftover serve` running in this process.

A writer upserts 100 records/s through the Backend router; after a few seconds the primary is stopped
(`pg_ctl stop -m immediate`), and in a second round its postmaster is killed -9. Printed per round:
RTO = time from the loss to the first successful write on the standby; RPO = acknowledged writes missing on the
standby. Modes: sync-only (the sync flow's copy every --sync-every s) and mirror (the router writes each record to
the standby before acknowledging it). Policy: the high-availability template's (monitor every 1 s, 3 consecutive
failures, probe timeout 1.5 s).

    .venv/bin/python bench/failover_rto.py [--rate 100] [--sync-every 5] [--modes sync-only,mirror]
        [--losses stop,kill] [--before-loss 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
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

from adapters.base import CollectionSchema, Column  # noqa: E402
from adapters.config import load_config  # noqa: E402
from adapters.control import ControlStore  # noqa: E402
from adapters.errors import BackendError  # noqa: E402
from adapters.registry import open_adapter  # noqa: E402
from adapters.router import Backend  # noqa: E402
from tests.fixtures_clusters import PgCluster, write_config  # noqa: E402

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text"),
                                   Column("updated_at", "timestamp")), ("id",))


def one_round(root: Path, a: PgCluster, b: PgCluster, *, mode: str, loss: str, rate: float, sync_every: float,
              before_loss: float = 4.0):
    from flows.serve import Monitor
    from tasks.sync import sync_pair

    a.reset()
    b.reset()
    work = Path(tempfile.mkdtemp(dir=root))
    cfg = load_config(write_config(work, {
        "primary": {"kind": "postgresql", "url": a.url, "role": "primary", "priority": 1,
                    "options": {"connect_timeout_s": 1}},
        "replica": {"kind": "postgresql", "url": b.url, "role": "standby", "priority": 2,
                    "options": {"connect_timeout_s": 1}},
    }, health={"timeout_s": 1.5}, failover={"consecutive_failures": 3, "monitor_interval_s": 1, "cooldown_s": 120,
                                            "router_follow_s": 2}))
    control = ControlStore(cfg.control.url.get_secret_value())
    control.ensure_pointer("primary")
    for name in ("primary", "replica"):
        with open_adapter(cfg, name) as ad:
            ad.create_collection(ITEMS)
    stop = threading.Event()
    acked: list[int] = []
    after_loss: list[tuple[float, str]] = []
    lost_at: list[float] = []

    def writer() -> None:
        with Backend(cfg, mirror=(mode == "mirror"), control=ControlStore(cfg.control.url.get_secret_value())) as be:
            n, period = 0, 1 / rate
            next_at = time.monotonic()
            while not stop.is_set():
                try:
                    be.upsert("items", [{"id": n, "v": "w", "updated_at": dt.datetime.now(dt.timezone.utc)}])
                except BackendError:
                    time.sleep(0.02)
                    continue  # retry the same record: not acknowledged
                acked.append(n)
                if lost_at and not after_loss and be.active != "primary":
                    after_loss.append((time.monotonic(), be.active))
                n += 1
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

    def syncer() -> None:
        while not stop.wait(sync_every):
            pointer = control.pointer()
            if pointer.provider == "primary":
                try:
                    sync_pair(cfg, control, "primary", "replica", overlap_s=2)
                except BackendError:
                    pass

    monitor = Monitor(str(cfg.path))
    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=syncer, daemon=True)]
    for t in threads:
        t.start()
    monitor.start(stop)
    time.sleep(before_loss)
    lost_at.append(time.monotonic())
    a.stop() if loss == "stop" else a.kill9()
    deadline = time.monotonic() + 30
    while not after_loss and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(10)
    held = {r[0] for r in b.execute("SELECT id FROM items")}
    missing = [i for i in acked if i not in held]
    report = monitor.failovers[0] if monitor.failovers else None
    rto = after_loss[0][0] - lost_at[0] if after_loss else float("nan")
    return {
        "mode": mode, "loss": loss, "rto_s": rto, "first_write_on": after_loss[0][1] if after_loss else "-",
        "detect_to_switch_s": getattr(report, "detect_to_switch_s", None), "acked": len(acked),
        "lost_acked": len(missing),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--sync-every", type=float, default=5)
    parser.add_argument("--modes", default="sync-only,mirror", help="comma-separated: sync-only, mirror")
    parser.add_argument("--losses", default="stop,kill", help="comma-separated: stop (immediate), kill (-9)")
    parser.add_argument("--before-loss", type=float, default=4.0, help="seconds of writes before the loss")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    losses = [{"kill": "kill -9"}.get(x.strip(), x.strip()) for x in args.losses.split(",") if x.strip()]
    if not set(modes) <= {"sync-only", "mirror"} or not set(losses) <= {"stop", "kill -9"}:
        parser.error("--modes takes sync-only,mirror and --losses takes stop,kill")
    logging.basicConfig(level=logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="shiftover-bench-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    os.chmod(root, 0o777)
    a, b = PgCluster(root, "a"), PgCluster(root, "b")
    try:
        for c in (a, b):
            c.init()
        from flows.failover import FailoverParams, failover  # warm the Prefect API up before measuring

        warm = write_config(Path(tempfile.mkdtemp(dir=root)), {"x": {"kind": "memory", "role": "primary"},
                                                               "y": {"kind": "memory", "role": "standby"}})
        failover(FailoverParams(config_path=str(warm), dry_run=True))
        rows = []
        failed = False
        for mode in modes:
            for loss in losses:
                r = one_round(root, a, b, mode=mode, loss=loss, rate=args.rate, sync_every=args.sync_every,
                              before_loss=args.before_loss)
                rows.append(r)
                print(f"{r['mode']:>9} | {r['loss']:>7} | RTO {r['rto_s']:5.2f} s (first write on {r['first_write_on']}; "
                      f"first failed probe → switch {r['detect_to_switch_s'] or float('nan'):.2f} s) | "
                      f"acknowledged {r['acked']:5d} | lost acknowledged writes (RPO) {r['lost_acked']}", flush=True)
                failed |= r["first_write_on"] != "replica" or (mode == "mirror" and r["lost_acked"] > 0)
    finally:
        for c in (a, b):
            c.stop()
        shutil.rmtree(root, ignore_errors=True)
    if failed:
        sys.exit("a round did not fail over to the replica, or mirror mode lost an acknowledged write")


if __name__ == "__main__":
    main()
