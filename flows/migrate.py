"""Flow `migrate`: copy every collection from one provider to another and cut over only when the suites pass.

The flow takes the run lease on both providers and dispatches to the strategy (adapters/strategies.py; immediate in
flows/immediate.py, blue_green in flows/bluegreen.py, gradual in flows/gradual.py). Whatever fails, the pointer stays,
the source is untouched, and a re-run resumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from prefect import flow

from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import MigrationFailed
from shiftover.adapters.strategies import Strategy
from shiftover.control.leases import RunLease
from shiftover.control.store import ControlStore
from shiftover.control.syncstate import SyncStates
from shiftover.expectations.suites import prewarm
from shiftover.flows.migration_run import MigrateParams, resolve_run_id
from shiftover.tasks.report_model import REPORT_DIR, MigrationReport

__all__ = ["MigrateParams", "migrate"]


@flow(name="migrate", log_prints=False, validate_parameters=True)
def migrate(
    source: str,
    target: str,
    strategy: Strategy | None = None,
    collections: list[str] | None = None,
    dry_run: bool = False,
    switch: bool = True,
    batch_size: int | None = None,
    chunk_rows: int | None = None,
    workers: int | None = None,
    approve_cutover: bool = False,
    approval_timeout_s: float = 3600,
    release_source: bool = False,
    max_lag: int = 100,
    catchup_timeout_s: float = 600,
    chunks_per_run: int | None = None,
    runner: Literal["threads", "dask"] = "threads",
    dask_address: str | None = None,
    run_id: str | None = None,
    report_dir: str = REPORT_DIR,
    config_path: str = "backends.yaml",
) -> MigrationReport:
    """Copy `source` to `target` and cut over when the suites pass. The parameters are MigrateParams' fields, one
    form field each (top-level, so the Prefect UI shows a flat form); a caller holding a MigrateParams passes
    `**params.model_dump()`."""
    return run_migration(MigrateParams(**locals()))  # every parameter above, and nothing else, is a field


def run_migration(params: MigrateParams) -> MigrationReport:
    """The body of the flow `migrate`, inside its flow run."""
    config = load_config(params.config_path)
    params = params.resolved(config)
    if params.source == params.target:
        raise MigrationFailed("source and target are the same provider", hint="name two different providers")
    control = ControlStore(config.control.url.get_secret_value())
    if params.dry_run:
        return _migrate(params, config, control)
    # One run at a time on these providers: a second run is refused here, before it freezes or copies anything.
    run_id = resolve_run_id(control, params)
    params = params.model_copy(update={"run_id": run_id})
    with RunLease(config, control, [params.source, params.target], run_id=run_id, kind="migrate") as lease:
        states = SyncStates(control)  # a standby written by a migration, or whose capture it consumes, is re-copied
        states.invalidate(target=params.target, why=f"migration {params.run_id} wrote into it")
        if params.strategy != "immediate":
            states.invalidate(source=params.source, why=f"migration {params.run_id} consumed the change capture")
        return _migrate(params, config, control, lease.notes)


def _migrate(params: MigrateParams, config: Config, control: ControlStore,
             lease_notes: list[str] | None = None) -> MigrationReport:
    pointer = control.ensure_pointer(config.primary())
    strategy = Strategy.of(params.strategy or Strategy.immediate)  # resolved by the flow
    report = MigrationReport(run_id=params.run_id or "-", source=params.source, target=params.target,
                             strategy=strategy.value, status="dry-run" if params.dry_run else "failed",
                             dry_run=params.dry_run, started=dt.datetime.now(dt.timezone.utc),
                             epoch_before=pointer.epoch, active_after=pointer.provider, notes=list(lease_notes or []),
                             report_dir=str(_beside(config, params.report_dir)))
    if not params.dry_run:
        prewarm()  # the GX worker imports GX while the copy runs (a no-op when it is already up)
    run: Callable[..., MigrationReport] = strategy.load()
    return run(params, config, control, pointer, report)


def _beside(config: Config, path: str) -> Path:
    """A relative path from the parameters, taken relative to backends.yaml's folder (as SQLite paths are)."""
    return (config.path.parent if config.path is not None else Path.cwd()) / path
