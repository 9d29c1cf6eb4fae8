"""The deployments `shiftover serve` serves. Add a flow here and it appears in the UI with its parameter form.

`build_deployments(config_path)` returns RunnerDeployments for `prefect.serve`: health_sweep and sync on intervals
(failover.sweep_interval_s unless overridden); failover, migrate, full_test_suite and analyze_codebase on demand.
Each carries its markdown description (deployments/descriptions.py) and a form whose provider fields offer the
providers of this backends.yaml (deployments/forms.py); migrate's parameters are top-level fields.
deployments/prefect.yaml describes the same set for a work pool and workers.

The interval deployments (IN_PROCESS) run inside the serve process; the rest each in a process of their own.
Each deployment runs at most one run at a time (a deployment concurrency limit of 1, enforced by the Prefect server
when a run would start, and for IN_PROCESS by serve itself): an overlapping run of a scheduled deployment
(health-sweep, sync) or of failover is skipped, it ends Cancelled (the next interval runs anyway, so a slow run never
piles up a backlog); an overlapping migrate, full-test-suite or analyze-codebase run waits for the slot (a user asked
for it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shiftover.adapters.config import load_config
from shiftover.deployments.descriptions import DESCRIPTIONS
from shiftover.deployments.forms import finish_forms

if TYPE_CHECKING:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

IN_PROCESS = frozenset({"health-sweep", "sync"})  # run inside `shiftover serve` (shiftover/service/scheduled_runs.py)
SKIP, WAIT = "CANCEL_NEW", "ENQUEUE"  # Prefect's collision strategies: cancel the overlapping run, or queue it


def one_at_a_time(collision: str) -> ConcurrencyLimitConfig:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy(collision))


def in_process(deployments: list) -> list[tuple]:
    """(flow, deployment) of the IN_PROCESS deployments among `deployments`, for shiftover/service/scheduled_runs.py."""
    from shiftover.flows.health_sweep import health_sweep
    from shiftover.flows.sync import sync

    flows = {"health-sweep": health_sweep, "sync": sync}
    return [(flows[d.name], d) for d in deployments if d.name in IN_PROCESS]


def build_deployments(config_path: str | Path, *, sweep_interval_s: float | None = None,
                      sync_interval_s: float | None = None) -> list:
    from shiftover.flows.analyze_codebase import analyze_codebase
    from shiftover.flows.failover import failover
    from shiftover.flows.full_test_suite import full_test_suite
    from shiftover.flows.health_sweep import health_sweep
    from shiftover.flows.migrate import MigrateParams, migrate
    from shiftover.flows.sync import sync

    config = load_config(config_path)
    path = str(config.path)
    sweep = sweep_interval_s or config.failover.sweep_interval_s
    every = sync_interval_s or sweep
    defaults = {"params": {"config_path": path}}
    about = DESCRIPTIONS
    built = [
        health_sweep.to_deployment(name="health-sweep", interval=sweep, parameters=defaults,
                                   concurrency_limit=one_at_a_time(SKIP), description=about["health-sweep"],
                                   tags=["shiftover", "health"]),
        sync.to_deployment(name="sync", interval=every, parameters=defaults, concurrency_limit=one_at_a_time(SKIP),
                           description=about["sync"], tags=["shiftover", "sync"]),
        failover.to_deployment(name="failover", parameters=defaults, concurrency_limit=one_at_a_time(SKIP),
                               description=about["failover"], tags=["shiftover", "failover"]),
        migrate.to_deployment(name="migrate", parameters={"config_path": path}, concurrency_limit=one_at_a_time(WAIT),
                              description=about["migrate"], tags=["shiftover", "migrate"]),
        full_test_suite.to_deployment(name="full-test-suite", parameters=defaults,
                                      concurrency_limit=one_at_a_time(WAIT), description=about["full-test-suite"],
                                      tags=["shiftover", "test-suite"]),
        analyze_codebase.to_deployment(name="analyze-codebase", tags=["shiftover", "analysis"],
                                       concurrency_limit=one_at_a_time(WAIT), description=about["analyze-codebase"]),
    ]
    finish_forms(built, list(config.providers), {"migrate": MigrateParams})
    return built
