"""`Backend.status()`: the active provider and each provider's health, from the control store.

Nothing is probed here: health, last check, response time and uptime come from the probes that health sweeps, the
failover monitor of `shiftover serve` and failovers record (`ControlStore.record_probe`), and the state the sweeps
settled on (`health_state`, debounced). Uptime is the share of successful probes over `health.window_s`, in percent.

`routes` lists what does not follow the pointer — the control store's per-collection routes (a gradual migration's)
and backends.yaml's `services:` — each with its target provider's health. The store is read through `StatusSource`:
ControlStore for `backend.status()` and `shiftover status`, the read-only ControlView for `GET /status`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import Config
from shiftover.control.store import ControlStore, Pointer

Health = Literal["healthy", "degraded", "down", "unknown"]


class ProviderStatus(BaseModel):
    name: str
    kind: str
    role: str
    active: bool
    health: Health  # the state health sweeps settled on; "unknown" before the first sweep
    last_check: dt.datetime | None
    response_time_ms: float | None  # of the last probe
    uptime: float | None  # % of successful probes over health.window_s
    probes: int  # probes in that window
    error: str | None  # of the last probe, if it failed


class RouteStatus(BaseModel):
    route: str  # "db", "storage" or "db.<collection>"
    provider: str
    set_by: Literal["migration", "services"]  # the control store's route (wins), or backends.yaml's services:
    health: Health  # of the provider, as in ProviderStatus; "unknown" for a provider no longer configured
    last_check: dt.datetime | None
    response_time_ms: float | None
    uptime: float | None


class StatusSource(Protocol):
    """What read_status reads of the control store (ControlStore; ControlView reads the same, read-only)."""

    def probes(self, provider: str, *, since: dt.datetime | None = None, limit: int = 1000) -> list[ProbeResult]: ...
    def health_state(self, provider: str) -> str | None: ...
    def routes(self) -> dict[str, str]: ...


class Status(BaseModel):
    current_provider: str
    epoch: int
    since: dt.datetime
    reason: str
    health: Health
    last_check: dt.datetime | None
    response_time_ms: float | None
    uptime: float | None
    providers: list[ProviderStatus]
    routes: list[RouteStatus] = Field(default_factory=list)  # what does not follow the pointer


def uptime(window: Sequence[ProbeResult]) -> float | None:
    """The share of successful probes in `window` (0..1); None without probes. Health sweeps judge by it too."""
    return sum(p.ok for p in window) / len(window) if window else None


def provider_status(config: Config, control: StatusSource, name: str, active: str,
                    now: dt.datetime) -> ProviderStatus:
    provider = config.providers[name]
    window = control.probes(name, since=now - dt.timedelta(seconds=config.health.window_s), limit=100_000)
    last = window[0] if window else next(iter(control.probes(name, limit=1)), None)
    state = control.health_state(name)
    return ProviderStatus(
        name=name, kind=provider.kind, role=provider.role, active=name == active,
        health=state if state in ("healthy", "degraded", "down") else "unknown",
        last_check=last.at if last else None,
        response_time_ms=round(last.latency_ms, 3) if last else None,
        uptime=None if (share := uptime(window)) is None else round(100 * share, 3),
        probes=len(window), error=last.error if last and not last.ok else None)


def route_statuses(config: Config, control: StatusSource, providers: list[ProviderStatus]) -> list[RouteStatus]:
    """The control store's routes first (they win over services:), then services: in the file's order."""
    by_name = {p.name: p for p in providers}
    pairs = [(f"db.{c}", name, "migration") for c, name in sorted(control.routes().items())]
    pairs += [(path.replace("collections.", "db.", 1), name, "services") for path, name in config.services.named()]
    out = []
    for route, name, set_by in pairs:
        p = by_name.get(name)
        out.append(RouteStatus(route=route, provider=name, set_by=set_by, health=p.health if p else "unknown",
                               last_check=p and p.last_check, response_time_ms=p and p.response_time_ms,
                               uptime=p and p.uptime))
    return out


def status_at(config: Config, pointer: Pointer, control: StatusSource) -> Status:
    now = dt.datetime.now(dt.timezone.utc)
    providers = [provider_status(config, control, name, pointer.provider, now) for name in config.providers]
    current = next((p for p in providers if p.active), None)  # None: the pointer names a provider no longer configured
    return Status(current_provider=pointer.provider, epoch=pointer.epoch, since=pointer.since, reason=pointer.reason,
                  health=current.health if current else "unknown", last_check=current and current.last_check,
                  response_time_ms=current and current.response_time_ms, uptime=current and current.uptime,
                  providers=providers, routes=route_statuses(config, control, providers))


def read_status(config: Config, control: ControlStore) -> Status:
    """The status; sets the pointer from the configuration if the store has none yet."""
    return status_at(config, control.ensure_pointer(config.primary()), control)
