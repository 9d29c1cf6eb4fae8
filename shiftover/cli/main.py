"""The `shiftover` command. Flows are imported inside the commands, so `--help`, `--version`, `init` and `status`
import no Prefect, GX or pandas. Commands that run a flow first pick the Prefect API (shiftover/prefect_api.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shiftover.adapters.errors import BackendError
from shiftover.adapters.strategies import Strategy, summaries
from shiftover.cli import logs as cli_logging
from shiftover.cli import reports as cli_reports
from shiftover.cli.common import ConfigOpt, err, known_providers, out, prefect_api, quiet_backend_tracebacks
from shiftover.cli.progress import CopyProgress
from shiftover.cli.tables import Col, show
from shiftover.tasks.report_model import REPORT_DIR

if TYPE_CHECKING:
    from shiftover.adapters.config import Config

app = typer.Typer(help="Keep an application's backend healthy and movable.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=True, rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"shiftover {version('shiftover')}", highlight=False)
        except PackageNotFoundError:
            out.print("shiftover (not installed: run `make venv`)", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """Keep an application's backend healthy and movable."""


class Runner(str, Enum):
    threads = "threads"
    dask = "dask"


class Template(str, Enum):
    development = "development"
    production = "production"
    high_availability = "high-availability"


@app.command(short_help="Write a commented backends.yaml from a template.")
def init(
    template: Annotated[Template, typer.Option(help="development: local only; production: Supabase primary with a "
                                                    "Firebase backup; high-availability: several providers with "
                                                    "automatic failover")] = Template.development,
    path: Annotated[Path, typer.Option(help="file to write")] = Path("backends.yaml"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented backends.yaml from a template."""
    if path.exists() and not force:
        raise typer.BadParameter(f"{path} exists; pass --force to overwrite it", param_hint="--path")
    templates = resources.files("shiftover.flows").joinpath("templates")
    text = templates.joinpath(f"{template.value}.yaml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    out.print(f"Wrote [bold]{path}[/] from the {template.value} template. Edit it, then run "
              f"[bold]shiftover status --config {path}[/].")


@app.command(short_help="Copy a provider to another; cut over when checks pass.")
def migrate(
    source: Annotated[str, typer.Argument(help="provider to copy from")],
    target: Annotated[str, typer.Argument(help="provider to copy to")],
    strategy: Annotated[Optional[Strategy], typer.Option(
        help=f"{summaries()} (default: backends.yaml's migration.strategy, else immediate)",
        show_default=False)] = None,
    collections: Annotated[Optional[str], typer.Option(help="comma-separated collections (default: all)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; change nothing")] = False,
    config: ConfigOpt = Path("backends.yaml"),
    batch_size: Annotated[Optional[int], typer.Option(help="records per batch")] = None,
    chunk_rows: Annotated[Optional[int], typer.Option(help="records per key-range chunk")] = None,
    workers: Annotated[Optional[int], typer.Option(help="chunks copied at once")] = None,
    switch: Annotated[bool, typer.Option(help="move the active pointer when the suites pass")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    runner: Annotated[Runner, typer.Option(help="where chunks are copied: threads here, or Dask (prefect-dask): "
                                                "the cluster at --dask-address, else a local one")] = Runner.threads,
    dask_address: Annotated[Optional[str], typer.Option(
        "--dask-address", help="a running Dask scheduler, tcp://HOST:PORT, to copy the chunks on (implies --runner "
                               "dask; default: migration.dask_address)")] = None,
    approve_cutover: Annotated[bool, typer.Option("--approve-cutover", help="blue_green: pause before the freeze "
                                                  "until someone approves in the Prefect UI")] = False,
    approval_timeout: Annotated[float, typer.Option(help="seconds to wait for approval")] = 3600,
    max_lag: Annotated[int, typer.Option(help="freeze once fewer captured changes than this wait")] = 100,
    chunks_per_run: Annotated[Optional[int], typer.Option(help="gradual: chunks copied per run")] = None,
    release_source: Annotated[bool, typer.Option("--release-source", help="blue_green: lift the old primary's "
                                                 "write fence at once (no rollback)")] = False,
    report_dir: Annotated[Optional[Path], typer.Option(
        help=f"where the self-contained HTML report is written (default: {REPORT_DIR} beside backends.yaml)",
        show_default=False)] = None,
) -> None:
    """Copy SOURCE to TARGET and cut over when the Great Expectations suites pass. Exit 0 only on cutover (or a
    gradual run that advanced); 1 when the cutover was blocked, rejected or failed."""
    from shiftover.adapters.config import load_config
    from shiftover.control.store import ControlStore

    cfg = load_config(config)
    known_providers(cfg, source, target)
    if dask_address is not None:
        dask_address, runner = _checked_dask_address(dask_address), Runner.dask
    if not dry_run:
        _warm_up(cfg, source, target)
    prefect_api("shiftover.flows.migrate")
    from shiftover.flows.migrate import MigrateParams, resolve_run_id
    from shiftover.flows.migrate import migrate as migrate_flow

    quiet_backend_tracebacks()
    params = MigrateParams(
        source=source, target=target, strategy=strategy,
        collections=[c.strip() for c in collections.split(",") if c.strip()] if collections else None,
        dry_run=dry_run, config_path=str(cfg.path), batch_size=batch_size, chunk_rows=chunk_rows, workers=workers,
        switch=switch, runner=runner.value, approve_cutover=approve_cutover, approval_timeout_s=approval_timeout,
        max_lag=max_lag, chunks_per_run=chunks_per_run, release_source=release_source, dask_address=dask_address,
        report_dir=str(report_dir.resolve()) if report_dir is not None else REPORT_DIR).resolved(cfg)
    control = ControlStore(cfg.control.url.get_secret_value())
    params.run_id = None if dry_run else resolve_run_id(control, params)
    if runner is Runner.dask and params.strategy is Strategy.immediate:  # live strategies pick the runner per copy
        migrate_flow = migrate_flow.with_options(task_runner=_dask_runner(cfg, workers, dask_address))
    with CopyProgress(control, params.run_id, err, enabled=not dry_run and not as_json):
        report = migrate_flow(**params.model_dump())
    _print_report(report, control, as_json=as_json)


def _print_report(report: Any, control: Any, *, as_json: bool) -> None:
    """The migration report (markdown or JSON), then the pointer after a run; exit 1 when it was blocked or failed."""
    from shiftover.tasks.reporting import html_path

    if as_json:
        out.print_json(report.model_dump_json())
    else:
        cli_reports.migration(out, report)
        page = html_path(report, report.report_dir)
        if page.exists():
            out.print(f"The whole report, with the time-per-phase chart: {page}", soft_wrap=True, highlight=False)
        if not report.dry_run:
            _print_pointer(control)
    if report.status in ("blocked", "failed"):
        raise typer.Exit(1)


def _dask_runner(cfg: Config, workers: int | None, address: str | None) -> Any:
    from shiftover.flows.task_runners import dask_address, task_runner

    return task_runner("dask", workers or cfg.migration.workers, dask_address(cfg, address))


def _checked_dask_address(value: str) -> str:
    from shiftover.adapters.config import check_dask_address

    try:
        return check_dask_address(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dask-address") from None


def _warm_up(cfg: Config, source: str, target: str) -> None:
    """GX's import (seconds) and the drivers' imports overlap the Prefect API's start-up instead of the copy."""
    from shiftover.adapters.registry import preload
    from shiftover.expectations.suites import prewarm

    prewarm(yield_cpu=False)
    kinds = [cfg.providers[n].kind for n in (source, target) if n in cfg.providers]
    threading.Thread(target=preload, args=(kinds,), name="shiftover-preload", daemon=True).start()


def _print_pointer(control) -> None:  # type: ignore[no-untyped-def]
    pointer = control.pointer()
    if pointer:
        out.print(f"Active backend: [bold green]{pointer.provider}[/] (epoch {pointer.epoch}, since "
                  f"{pointer.since:%Y-%m-%d %H:%M:%S} UTC — {pointer.reason})")


@app.command(short_help="The active provider, freezes, leases, sync and runs.")
def status(
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    runs: Annotated[int, typer.Option(help="how many recent runs to list")] = 5,
) -> None:
    """Print the active provider and epoch, the routes that do not follow it (a migration's, backends.yaml's services:)
    with their provider's health, write freezes, leases, the standbys' sync, what Shiftover has installed in each
    provider's database (with the command that removes it), and the last runs."""
    from shiftover.adapters.config import load_config
    from shiftover.adapters.status import status_at
    from shiftover.cli.installed import installed_rows
    from shiftover.cli.runs import print_leases_and_sync, print_routes, status_json
    from shiftover.control.leases import LeaseTable
    from shiftover.control.store import ControlStore
    from shiftover.control.syncstate import SyncStates

    cfg = load_config(config)
    control = ControlStore(cfg.control.url.get_secret_value())
    pointer = control.ensure_pointer(cfg.primary())
    freezes = control.freezes()
    recent = control.runs(limit=runs)
    installed = installed_rows(cfg, pointer.provider, control.runs(limit=50))
    leases = LeaseTable(control).all()
    synced = SyncStates(control).get(source=pointer.provider)
    routes = status_at(cfg, pointer, control).routes
    if as_json:
        out.print_json(json.dumps(status_json(pointer, leases, synced, freezes, installed, recent, cfg.providers,
                                              routes)))
        return
    _print_pointer(control)
    show(out, "Providers", (Col("provider", "name"), Col("active"), Col("kind"), Col("role"), Col("priority"),
                            Col("url", "text")),
         [(name, name == pointer.provider, p.kind, p.role, p.priority, p.display_url())
          for name, p in cfg.providers.items()])
    print_routes(out, routes)
    if freezes:
        show(out, "Write freezes", (Col("provider", "name"), Col("collection", "name"), Col("since"),
                                    Col("reason", "text")),
             [(f.provider, f.collection, f"{f.since:%H:%M:%S}", f.reason) for f in freezes], style="yellow")
    if installed:
        show(out, "Installed by Shiftover", (Col("provider", "name"), Col("what"), Col("name", "name"),
                                             Col("on", "name"), Col("removed by", "text")),
             [(r.provider, r.item.what if r.item else "-", r.item.name if r.item else "-",
               (r.item.collection or "") if r.item else "", r.remove) for r in installed], style="yellow")
    print_leases_and_sync(out, pointer.provider, leases, synced)
    if recent:
        show(out, "Recent runs", (Col("run", "name"), Col("what", "text"), Col("from", "name"), Col("to", "name"),
                                  Col("status", coloured=True), Col("started", "text")),
             [(run.run_id, f"{run.kind} {run.strategy or ''}".strip(), run.source or "-", run.target or "-",
               run.status, f"{run.started:%Y-%m-%d %H:%M:%S}") for run in recent])


@app.command(short_help="Undo a blue-green cutover.")
def rollback(
    config: ConfigOpt = Path("backends.yaml"),
    run_id: Annotated[Optional[str], typer.Option(help="blue-green run to undo (default: the last that switched)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Undo a blue-green cutover: copy green's writes since the cutover back to blue, then move the pointer back."""
    from shiftover.adapters.config import load_config
    from shiftover.control.store import ControlStore

    prefect_api("shiftover.flows.rollback")
    from shiftover.flows.rollback import RollbackParams
    from shiftover.flows.rollback import rollback as rollback_flow

    quiet_backend_tracebacks()
    cfg = load_config(config)
    report = rollback_flow(RollbackParams(config_path=str(cfg.path), run_id=run_id))
    _print_report(report, ControlStore(cfg.control.url.get_secret_value()), as_json=as_json)


@app.command(short_help="End a blue-green cutover for good (no rollback).")
def release(
    provider: Annotated[str, typer.Argument(help="the old primary to let go")],
    config: ConfigOpt = Path("backends.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print what was released as JSON")] = False,
) -> None:
    """End a blue-green cutover for good: lift the old primary's write fence and stop change capture (no rollback)."""
    from shiftover.adapters.config import load_config

    cfg = load_config(config)
    known_providers(cfg, provider)
    prefect_api("shiftover.flows.rollback")
    from shiftover.flows.rollback import ReleaseParams
    from shiftover.flows.rollback import release as release_flow

    quiet_backend_tracebacks()
    names = release_flow(ReleaseParams(provider=provider, config_path=str(cfg.path)))
    if as_json:
        out.print_json(json.dumps({"provider": provider, "released": names}))
        return
    out.print(f"Released {provider}: {', '.join(names) or 'nothing was fenced'}; it takes writes again and "
              "rollback is no longer possible.")


@app.command(short_help="Seed a SQLite shop and migrate it, gated by GX.")
def demo(
    rows: Annotated[int, typer.Option(help="rows to seed across customers, orders and order_items")] = 120_000,
    directory: Annotated[Path, typer.Option("--dir", help="where the demo's databases go")] = Path("demo-data"),
) -> None:
    """Seed a realistic shop database in SQLite and migrate it to a second SQLite backend, gated by GX."""
    from shiftover.adapters.config import load_config
    from shiftover.adapters.registry import open_adapter
    from shiftover.cli.demo_data import SCHEMAS, demo_config, seed

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    config_file = directory / "backends.yaml"
    config_file.write_text(demo_config(directory), encoding="utf-8")
    cfg = load_config(config_file)
    out.rule("[bold]Shiftover demo")
    out.print(f"Configuration: {config_file} (source [bold]shop[/] → target [bold]shop_next[/], both SQLite)")
    with Progress(TextColumn("[bold]seeding {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as bar:
        tasks = {s.name: bar.add_task(s.name, total=None) for s in SCHEMAS}
        start = time.perf_counter()
        with open_adapter(cfg, "shop") as src:
            counts = seed(src, rows, on_batch=lambda name, n: bar.advance(tasks[name], n))
    out.print(f"Seeded {sum(counts.values()):,} rows ({', '.join(f'{k} {v:,}' for k, v in counts.items())}) "
              f"in {time.perf_counter() - start:.1f} s")
    out.rule("[bold]shiftover migrate shop shop_next --strategy immediate")
    os.environ.setdefault("SHIFTOVER_PROGRESS", "1")
    migrate(source="shop", target="shop_next", strategy=Strategy.immediate, collections=None, dry_run=False,
            config=config_file, batch_size=None, chunk_rows=None, workers=None, switch=True, as_json=False)
    out.rule("[bold]See it in the Prefect UI")
    home = os.environ.get("PREFECT_HOME", str(Path.home() / ".prefect"))
    out.print(f"The runs and their artifacts are stored under PREFECT_HOME={home}. To browse them:\n"
              f"  PREFECT_HOME={home} .venv/bin/prefect server start\n"
              "then open http://127.0.0.1:4200/runs (flow run → Artifacts) and http://127.0.0.1:4200/artifacts.\n"
              f"Status any time: .venv/bin/shiftover status --config {config_file}")


from shiftover.cli.analyze import analyze_command  # noqa: E402 - light: Prefect is imported inside the command
from shiftover.cli.runs import unfreeze_command  # noqa: E402 - light as well

app.command("unfreeze", short_help="Lift a write freeze left by an interrupted run.",
            help="Lift a write freeze left behind by an interrupted run (engine triggers and control-store flags). "
                 "A freeze set by a run is lifted only with --run-id naming it.")(unfreeze_command)

app.command("analyze", short_help="Find direct provider-SDK calls; plan a migration.",
            help="List every direct provider-SDK call under PATH by service, flag the risky ones, and write a "
                 "migration plan with an effort estimate (JSON file + Prefect artifact).")(analyze_command)

from shiftover.cli.ops import failover, health, serve, sync, test_suite  # noqa: E402 - light as well

app.command("test-suite", short_help="Run the cross-provider test suite; report as HTML.")(test_suite)
app.command(short_help="Probe every provider now.")(health)
app.command(short_help="Fence the primary and switch to the best standby.")(failover)
app.command(short_help="Copy the active provider's changes to the standbys.")(sync)
app.command(short_help="Run the scheduled flows and the failover monitor.")(serve)


def _say(line: str) -> None:
    err.print(escape(" | ".join(p for p in line.splitlines() if p.strip())), soft_wrap=True, highlight=False,
              style="bold red" if err.is_terminal else None)


def print_error(exc: BackendError) -> None:
    where = f" [{exc.provider}]" if exc.provider else ""
    err.print(f"[bold red]{exc.code}[/]" + escape(f"{where}: {exc.message}")
              + (f"\n  [dim]what to do:[/] {escape(exc.hint)}" if exc.hint else ""), highlight=False)


def main() -> None:
    """The entry point: anything that escapes a command ends as one line with a BACKEND code and what to do."""
    try:
        _run()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code: str | int | None) -> None:
    """Exit without Python's teardown of every module once Prefect is loaded: after a flow, finalizing Prefect's,
    pydantic's and SQLAlchemy's objects took another 0.3-0.5 s. The atexit handlers still run first (Prefect
    delivers its pending events and logs, and stops a temporary server, there)."""
    if "prefect" not in sys.modules:
        sys.exit(code)
    import atexit

    if isinstance(code, str):
        err.print(code, highlight=False)
        code = 1
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is not None:  # send the run's last log lines while a temporary API still listens
        handlers.APILogWorker.drain_all(timeout=5)
    atexit._run_exitfuncs()  # the stdlib's own exit path, which os._exit skips
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 0)


def _run() -> None:
    cli_logging.install(err)
    try:
        app()
    except BackendError as exc:
        where = f" [{exc.provider}]" if exc.provider else ""
        _say(f"{exc.code}{where}: {exc.message}" + (f" — what to do: {exc.hint}" if exc.hint else ""))
        sys.exit(1)
    except KeyboardInterrupt:
        _say("interrupted; a run that was copying resumes where it stopped when started again")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: log it, say it in one line
        httpx = sys.modules.get("httpx")
        if httpx is not None and isinstance(exc, httpx.TransportError):  # e.g. the Prefect server went away mid-run
            from shiftover.adapters.errors import OrchestratorUnavailable
            from shiftover.prefect_api import FIX

            _say(str(OrchestratorUnavailable(f"the Prefect API stopped answering ({type(exc).__name__}: "
                                             f"{cli_logging.one_line(exc)[:200]})", hint=FIX)))
            sys.exit(1)
        path = cli_logging.log_unexpected(exc)
        _say(f"{BackendError.code}: unexpected error: {cli_logging.one_line(exc)} — what to do: the full detail "
             f"is in {path}; retry, and report it with that file if it happens again")
        sys.exit(1)


if __name__ == "__main__":
    main()
