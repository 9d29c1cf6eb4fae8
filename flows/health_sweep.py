"""Flow `health_sweep`: probe every provider at once, record each probe, publish a table and the trend over the kept
history (a chart), emit state changes.

A scheduled deployment of `shiftover serve` (default every failover.sweep_interval_s). It covers every provider and
keeps the history the failover policy and the uptime column read; second-by-second detection of the active provider
is the monitor's job (shiftover/service/process.py). Old primaries that answer again are fenced here too.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from shiftover.adapters.config import load_config
from shiftover.tasks.failover import fence_returning
from shiftover.tasks.health import TREND_KEY, ProviderHealth, health_trend, probe_provider, record_health, trend_due


class HealthSweepParams(BaseModel):
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    providers: list[str] | None = Field(None, description="providers to probe; empty means all")
    canary: bool | None = Field(None, description="write/read/delete a canary record (default: health.canary)")
    trend: bool | None = Field(None, description="publish the health-trend chart: true always, false never, empty: "
                               "when the last one is over 5 minutes old")


@flow(name="health_sweep", log_prints=False, validate_parameters=True)
def health_sweep(params: HealthSweepParams) -> list[ProviderHealth]:
    logger = get_run_logger()
    config = load_config(params.config_path)
    config_path = str(config.path)
    names = params.providers or list(config.providers)
    futures = [probe_provider.submit(config_path, name, params.canary) for name in names]
    results = [f.result() for f in futures]
    health = record_health(config_path, results)
    fenced = fence_returning(config_path)
    table = [h.row() for h in health]
    create_table_artifact(key="health-sweep", table=table,
                          description=f"Health of {len(health)} provider(s); window {config.health.window_s:g} s"
                          + (f"; fenced on return: {', '.join(fenced)}" if fenced else ""))
    if params.trend or (params.trend is None and trend_due()):
        create_markdown_artifact(key=TREND_KEY, markdown=health_trend(config_path, names),
                                 description="Latency and uptime per provider over the health history kept")
    for h in health:
        if h.previous is not None and h.previous != h.status:
            logger.warning("%s went from %s to %s", h.provider, h.previous, h.status)
    return health
