"""The commands that watch and keep providers: `shiftover health`, `failover`, `sync`, `serve` and `test-suite`
(registered on the app in shiftover/cli/main.py). Light to import: Prefect is imported inside each command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from shiftover.cli import reports as cli_reports
from shiftover.cli.common import (
    ConfigOpt,
    err,
    known_providers,
    out,
    prefect_api,
    quiet_backend_tracebacks,
    short_run,
)


def test_suite(
    providers: Annotated[Optional[str], typer.Option(help="comma-separated provider names (default: all)")] = None,
    categories: Annotated[Optional[str], typer.Option(
        help="comma-separated: connection,crud,auth,storage,performance,load,migration (default: all)")] = None,
    data_size: Annotated[str, typer.Option(help="small (200 records), medium (2,000) or large (20,000)")] = "small",
    users: Annotated[int, typer.Option(help="concurrent clients in the load test")] = 4,
    duration: Annotated[float, typer.Option(help="seconds the load test runs")] = 3.0,
    partner: Annotated[Optional[str], typer.Option(help="provider to migrate to and back from")] = None,
    output_dir: Annotated[Path, typer.Option(help="where the JSON and HTML reports go")] = Path(
        "test-output/test-suite"),
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Run the cross-provider test suite in scratch collections. Exit 1 when any test failed."""
    from pydantic import ValidationError

    from shiftover.adapters.config import load_config

    prefect_api("shiftover.flows.full_test_suite")
    from shiftover.flows.full_test_suite import full_test_suite
    from shiftover.tasks.testsuite_model import TestSuiteParams

    quiet_backend_tracebacks()
    cfg = load_config(config)
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()] if text else None  # noqa: E731
    try:
        params = TestSuiteParams(providers=split(providers), categories=split(categories) or list(TestSuiteParams(
            ).categories), data_size=data_size, concurrent_users=users, duration_s=duration,
            migration_partner=partner, output_dir=str(output_dir), config_path=str(cfg.path))
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from None
    report = full_test_suite(params)
    if as_json:
        out.print_json(report.model_dump_json())
    else:
        cli_reports.test_suite(out, report)
    if report.summary.failed:
        raise typer.Exit(1)


def health(
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    canary: Annotated[Optional[bool], typer.Option("--canary/--no-canary",
                                                   help="write/read/delete a canary (default: health.canary)")] = None,
) -> None:
    """Probe every provider now (the health_sweep flow) and print status, latency, error and uptime."""
    from shiftover.adapters.config import load_config

    prefect_api("shiftover.flows.health_sweep")
    from shiftover.flows.health_sweep import HealthSweepParams, health_sweep

    quiet_backend_tracebacks()
    cfg = load_config(config)
    with short_run():
        result = health_sweep(HealthSweepParams(config_path=str(cfg.path), canary=canary))
    if as_json:
        print(json.dumps([{"provider": h.provider, "kind": h.kind, "active": h.active, "status": h.status,
                           "latency_ms": round(h.latency_ms, 1), "error": h.error, "uptime": h.uptime,
                           "probes": h.probes} for h in result]))
    else:
        cli_reports.health(out, result)
    if any(h.status == "down" for h in result):
        raise typer.Exit(1)


def failover(
    to: Annotated[Optional[str], typer.Option("--to", help="provider to switch to (default: the best standby)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would happen; change nothing")] = False,
    reason: Annotated[str, typer.Option(help="recorded with the switch")] = "manual failover",
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    force: Annotated[bool, typer.Option("--force", help="switch even to a standby whose sync never completed or whose "
                                        "lag is unknown (records may be lost, deleted ones may come back)")] = False,
) -> None:
    """Fence the active provider and switch to the best healthy standby (or --to NAME). A standby that is not known
    to be in sync is refused (BACKEND_017) unless the old primary answers for the final delta, or --force."""
    from shiftover.adapters.config import load_config

    cfg = load_config(config)
    known_providers(cfg, to)
    prefect_api("shiftover.flows.failover")
    from shiftover.flows.failover import FailoverParams
    from shiftover.flows.failover import failover as failover_flow

    quiet_backend_tracebacks()
    with short_run():
        report = failover_flow(FailoverParams(config_path=str(cfg.path), to=to, dry_run=dry_run, reason=reason,
                                              force=force))
    if as_json:
        print(report.model_dump_json())
    else:
        cli_reports.failover(out, report)
    if report.status == "superseded":
        raise typer.Exit(1)


def sync(
    to: Annotated[Optional[str], typer.Option("--to", help="comma-separated standbys (default: every standby)")] = None,
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Copy the changes on the active provider to each standby now (the sync flow)."""
    from shiftover.adapters.config import load_config

    cfg = load_config(config)
    targets = [t.strip() for t in to.split(",") if t.strip()] if to else None
    known_providers(cfg, *(targets or []))
    prefect_api("shiftover.flows.sync")
    from shiftover.flows.sync import SyncParams
    from shiftover.flows.sync import sync as sync_flow

    quiet_backend_tracebacks()
    results = sync_flow(SyncParams(config_path=str(cfg.path), targets=targets))
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in results]))  # counts as numbers, no lag as null
        return
    cli_reports.sync(out, results)


def serve(
    config: ConfigOpt = Path("backends.yaml"),
    host: Annotated[str, typer.Option(help="address of the read-only HTTP endpoint")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the read-only HTTP endpoint (GET /active)")] = 8765,
    sweep_interval: Annotated[Optional[float], typer.Option(help="seconds between health sweeps "
                                                                 "(default failover.sweep_interval_s)")] = None,
    sync_interval: Annotated[Optional[float], typer.Option(help="seconds between syncs (default: sweep)")] = None,
    monitor: Annotated[bool, typer.Option(help="probe the active provider and fail over automatically")] = True,
    api_port: Annotated[int, typer.Option(help="port of the Prefect server started when none runs (a free one if "
                                               "taken); commands reuse it")] = 4200,
    poll_interval: Annotated[float, typer.Option(min=0.2, help="seconds between polls for runs to start (a run "
                                                              "triggered in the UI starts within this)")] = 2.0,
) -> None:
    """Serve the deployments (health sweep, sync, failover, migrate), the failover monitor and GET /active. Uses
    PREFECT_API_URL or a registered server, else starts `prefect server start` and registers it for the commands."""
    from shiftover.adapters.config import load_config
    from shiftover.prefect_api import serve_api

    quiet_backend_tracebacks()
    cfg = load_config(config)
    with serve_api(api_port, status=err) as api_url:
        err.print(f"Prefect API: {api_url} (UI: {api_url.removesuffix('/api')})", highlight=False)
        from shiftover.service.process import serve as serve_all

        serve_all(str(cfg.path), host=host, port=port, monitor=monitor, sweep_interval_s=sweep_interval,
                  sync_interval_s=sync_interval, poll_s=poll_interval)
