"""Flow `sync`: copy every change on the active provider to each standby.

By default (`sync.method: capture`) through the primary's change capture, deletes included: one pass writes every
standby (one reader of the change log), a new or stale standby is first copied in full. With `sync.method:
updated_at`, incremental through `changes(since)` (deletes not replicated). Both record per standby and collection
when the last complete pass ran and the lag, which the failover flow checks before it switches. The run holds a
lease on the primary and the standbys (control/leases.py): a migration or another sync of them is refused meanwhile,
and a failover preempts it. A scheduled deployment of `shiftover serve`; the lag bounds the records at risk when
the primary dies without mirror mode.

A provider that is the target of a running migration (the control store's open runs) is never written to: the
migration owns it until it finishes, and a sync pass would race its copy and its validation.
"""

from __future__ import annotations

import uuid

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field

from shiftover.adapters.config import load_config
from shiftover.control.leases import RunLease
from shiftover.tasks.migration import control_store
from shiftover.tasks.sync import DEFAULT_OVERLAP_S, live_standbys, standbys, sync_standby, sync_standbys
from shiftover.tasks.sync_result import SyncResult


class SyncParams(BaseModel):
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")
    targets: list[str] | None = Field(None, description="standbys to sync; empty means every standby (with capture, "
                                      "every standby already in sync is written too)")
    collections: list[str] | None = Field(None, description="collections to sync; empty means all")
    overlap_s: float = Field(DEFAULT_OVERLAP_S, ge=0, description="updated_at method: re-read this much before the "
                             "watermark")


@flow(name="sync", log_prints=False, validate_parameters=True)
def sync(params: SyncParams) -> list[SyncResult]:
    config = load_config(params.config_path)
    config_path = str(config.path)
    capture = config.sync.method == "capture"
    with control_store(config) as control:
        active = control.ensure_pointer(config.primary()).provider
        migrating = control.running_migrations()
        wanted = [t for t in (params.targets or standbys(config, control, active)) if t != active]
        held = {t: migrating[t] for t in wanted if t in migrating}  # a migration owns its target until it ends
        for target, run_id in held.items():
            get_run_logger().warning("not syncing %s: it is the target of running migration %s", target, run_id)
        targets = [t for t in wanted if t not in held]
        if capture:  # the pass acknowledges changes: every standby in sync must get them too
            targets = sorted((set(targets) | set(live_standbys(config, control, active))) - set(held))
        run_id = f"sync-{uuid.uuid4().hex[:10]}"
        with RunLease(config, control, [active, *targets], run_id=run_id, kind="sync") as lease:
            if not targets:
                results: list[SyncResult] = []
            elif capture:
                results = sync_standbys(config_path, active, targets, params.collections, lease.token)
            else:
                futures = [sync_standby.submit(config_path, active, t, params.collections, params.overlap_s)
                           for t in targets]
                results = [f.result() for f in futures]
    skipped = [{"source": active, "target": t, "rows copied": 0, "collections": f"skipped: migration {run} running",
                "created": "-", "lag_s": "-", "seconds": 0} for t, run in held.items()]
    create_table_artifact(key="sync", table=[r.row() for r in results] + skipped
                          or [{"source": active, "target": "-"}],
                          description=f"Sync ({config.sync.method}) from {active} to {len(results)} standby(s)"
                          + (f"; skipped (targets of running migrations): {', '.join(held)}" if held else ""))
    return results
