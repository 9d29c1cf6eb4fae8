"""Flow `sync`: copy every change on the active provider to each standby (incremental, through `changes(since)`).

A scheduled deployment of `shiftover serve`. The watermarks and lag it records are what the failover flow ranks
standbys by, and the lag bounds the records at risk when the primary dies without mirror mode.

A provider that is the target of a running migration (the control store's open runs) is never written to: the
migration owns it until it finishes, and a sync pass would race its copy and its validation.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field

from adapters.config import load_config
from tasks.migration import control_store
from tasks.sync import DEFAULT_OVERLAP_S, SyncResult, standbys, sync_standby


class SyncParams(BaseModel):
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    targets: list[str] | None = Field(None, description="standbys to sync; empty means every standby")
    collections: list[str] | None = Field(None, description="collections to sync; empty means all")
    overlap_s: float = Field(DEFAULT_OVERLAP_S, ge=0, description="re-read this much before the watermark")


@flow(name="sync", log_prints=False, validate_parameters=True)
def sync(params: SyncParams) -> list[SyncResult]:
    config = load_config(params.config_path)
    config_path = str(config.path)
    with control_store(config) as control:
        active = control.ensure_pointer(config.primary()).provider
        targets = params.targets or standbys(config, control, active)
        migrating = control.running_migrations()
    held = {t: migrating[t] for t in targets if t in migrating}
    for target, run_id in held.items():
        get_run_logger().warning("not syncing %s: it is the target of running migration %s", target, run_id)
    futures = [sync_standby.submit(config_path, active, t, params.collections, params.overlap_s)
               for t in targets if t != active and t not in held]
    results = [f.result() for f in futures]
    skipped = [{"source": active, "target": t, "rows copied": 0, "collections": f"skipped: migration {run} running",
                "created": "-", "lag_s": "-", "seconds": 0} for t, run in held.items()]
    create_table_artifact(key="sync", table=[r.row() for r in results] + skipped
                          or [{"source": active, "target": "-"}],
                          description=f"Incremental sync from {active} to {len(results)} standby(s)"
                          + (f"; skipped (targets of running migrations): {', '.join(held)}" if held else ""))
    return results
