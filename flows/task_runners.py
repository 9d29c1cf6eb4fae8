"""Where a migration's chunk tasks run: threads in this process, or Dask (prefect-dask).

With `--runner dask` the chunks go to a running dask.distributed cluster when an address is given — `--dask-address`
on the command line or `dask_address` in the migrate form (flows/migrate.py), else `migration.dask_address`
in backends.yaml — and otherwise to a local cluster started for the copy and stopped after it. Each chunk task opens
its adapters from the config file, so a worker needs the project installed, the config file at the same path and the
providers reachable, and PREFECT_API_URL pointing at the same Prefect API.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from shiftover.adapters.config import check_dask_address
from shiftover.adapters.errors import ConfigInvalid, OrchestratorUnavailable

if TYPE_CHECKING:
    from shiftover.adapters.config import Config

CONNECT_TIMEOUT_S = 5.0


def dask_address(config: Config, given: str | None = None) -> str | None:
    """`given` (--dask-address, the form's dask_address) first, then migration.dask_address; None: a local cluster."""
    if not given or not given.strip():
        return config.migration.dask_address
    try:
        return check_dask_address(given.strip())
    except ValueError as exc:
        raise ConfigInvalid(f"dask_address: {exc}", hint="fix --dask-address") from None


def require_scheduler(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, when nothing listens at the scheduler's address (Dask itself waits 30 s, then raises
    an OSError deep in the flow run)."""
    host, _, port = address.split("://", 1)[1].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise OrchestratorUnavailable(
            f"no Dask scheduler answers at {address} ({exc.strerror or exc})",
            hint="start it (`dask scheduler`, then `dask worker ADDRESS` on each machine), fix --dask-address / "
                 "migration.dask_address, or leave both empty for a local cluster") from None


def task_runner(kind: str, workers: int, address: str | None = None) -> Any:
    """Threads here (`workers` at once); or Dask: the cluster at `address`, else a local one of `workers` processes
    with one thread each."""
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            require_scheduler(address)
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=workers)
