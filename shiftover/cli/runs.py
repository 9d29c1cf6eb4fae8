"""The commands about runs that hold providers: `shiftover unfreeze`, and the leases, sync and routes tables of
`status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from shiftover.cli.tables import Col, show

out = Console()
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="backends.yaml to read")]


def unfreeze_command(
    provider: Annotated[str, typer.Argument(help="provider whose write freeze to lift")],
    collections: Annotated[Optional[str], typer.Option(help="comma-separated (default: every frozen one)")] = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="lift the freeze this run set (a freeze owned by "
                                                  "a run is lifted only by it, or by you naming it here)")] = None,
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print what was lifted as JSON")] = False,
) -> None:
    """Lift a write freeze left behind by an interrupted run (engine triggers and control-store flags). A freeze set
    by a run is lifted only with --run-id naming that run."""
    from shiftover.adapters.config import load_config
    from shiftover.adapters.errors import LeaseHeld
    from shiftover.adapters.registry import open_adapter
    from shiftover.control.leases import LeaseTable
    from shiftover.control.store import ControlStore

    cfg = load_config(config)
    control = ControlStore(cfg.control.url.get_secret_value())
    flags = control.freezes(provider)
    owned = {f.collection: f.run_id for f in flags if f.run_id}
    with open_adapter(cfg, provider) as adapter:
        names = [c for c in collections.split(",") if c] if collections else sorted(
            {f.collection for f in flags} | set(adapter.frozen()))
        if run_id is not None:
            names = [n for n in names if owned.get(n) == run_id]
            if not names:
                raise typer.BadParameter(f"run {run_id} holds no freeze on {provider}", param_hint="--run-id")
        blocked = sorted({owned[n] for n in names if n in owned and owned[n] != run_id})
        if blocked:
            holder = LeaseTable(control).holder(provider, cfg.control.lease_ttl_s)
            live = f"; run {holder.run_id} is running ({holder.describe()})" if holder else ""
            raise LeaseHeld(f"the freeze on {provider} belongs to run(s) {', '.join(blocked)}{live}",
                            provider=provider, hint=f"pass --run-id {blocked[0]} to lift that run's freeze yourself")
        adapter.unfreeze(names)
    control.clear_freeze(provider, names, only_run=run_id)
    if as_json:
        print(json.dumps({"provider": provider, "lifted": names, "run_id": run_id}))
        return
    out.print(f"Lifted the write freeze on {provider}: {', '.join(names) or 'nothing was frozen'}"
              + (f" (set by run {run_id})" if run_id else ""))


def runs_json(leases: list[Any], synced: list[Any]) -> dict[str, Any]:
    return {
        "leases": [{"provider": x.provider, "run_id": x.run_id, "kind": x.kind, "host": x.host, "pid": x.pid,
                    "heartbeat_age_s": round(x.age_s(), 1)} for x in leases],
        "sync": [{"target": x.target, "collection": x.collection, "method": x.method, "state": x.state,
                  "note": x.note, "completed_at": x.completed_at.isoformat() if x.completed_at else None,
                  "pending": x.pending} for x in synced],
    }


def print_leases_and_sync(console: Console, active: str, leases: list[Any], synced: list[Any]) -> None:
    if leases:
        show(console, "Leases (one run at a time)", (Col("provider", "name"), Col("held by", "name"), Col("kind"),
                                                     Col("host / pid", "text"), Col("heartbeat")),
             [(x.provider, x.run_id, x.kind, f"{x.host} / {x.pid}", f"{x.age_s():.0f} s ago") for x in leases])
    if synced:
        show(console, f"Sync from {active}", (Col("standby", "name"), Col("collection", "name"), Col("method"),
                                              Col("state", "text", coloured=True), Col("last complete pass", "text"),
                                              Col("pending changes")),
             [(x.target, x.collection, x.method, x.state + (f" ({x.note})" if x.note else ""),
               f"{x.completed_at:%Y-%m-%d %H:%M:%S}" if x.completed_at else "never",
               "unknown" if x.pending is None else x.pending) for x in synced])


def print_routes(console: Console, routes: list[Any]) -> None:
    """What does not follow the pointer (adapters/status.RouteStatus), with the target provider's health."""
    if routes:
        show(console, "Routes (not following the pointer; a migration's route wins)",
             (Col("route", "name"), Col("provider", "name"), Col("set by"), Col("health", coloured=True),
              Col("checked"), Col("latency", justify="right"), Col("uptime", justify="right")),
             [(r.route, r.provider, r.set_by, r.health, f"{r.last_check:%H:%M:%S}" if r.last_check else "never",
               "-" if r.response_time_ms is None else f"{r.response_time_ms:.1f} ms",
               "-" if r.uptime is None else f"{r.uptime:.1f} %") for r in routes])


def status_json(pointer: Any, leases: Any, synced: Any, freezes: Any, installed: Any, recent: Any,
                providers: Any = None, routes: Any = ()) -> dict[str, Any]:
    """What `shiftover status --json` prints."""
    return {
        "active": pointer.provider, "epoch": pointer.epoch, "since": pointer.since.isoformat(),
        "reason": pointer.reason,
        "providers": [{"name": name, "active": name == pointer.provider, "kind": p.kind, "role": p.role,
                       "priority": p.priority, "url": p.display_url()} for name, p in (providers or {}).items()],
        "routes": [r.model_dump(mode="json") for r in routes],
        **runs_json(leases, synced),
        "freezes": [{"provider": f.provider, "collection": f.collection, "run_id": f.run_id,
                     "since": f.since.isoformat(), "reason": f.reason} for f in freezes],
        "installed": [{"provider": r.provider, "what": r.item.what if r.item else None,
                       "name": r.item.name if r.item else None,
                       "collection": r.item.collection if r.item else None, "remove": r.remove}
                      for r in installed],
        "runs": [{"run_id": r.run_id, "kind": r.kind, "source": r.source, "target": r.target,
                  "strategy": r.strategy, "status": r.status, "started": r.started.isoformat(),
                  "finished": r.finished.isoformat() if r.finished else None} for r in recent],
    }
