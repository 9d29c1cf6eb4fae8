"""`Backend.status()`: the active provider and each provider's health, from the control store.

Nothing is probed here: health, last check, response time and uptime come from the probes that health sweeps, the
failover monitor of `shiftover serve` and failovers record (`ControlStore.record_probe`), and the state the sweeps
settled on (`health_state`, debounced). Uptime is the share of successful probes over `health.window_s`, in percent.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel

from shiftover.adapters.config import Config
from shiftover.control.store import ControlStore

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


def provider_status(config: Config, control: ControlStore, name: str, active: str,
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
        uptime=round(100 * sum(p.ok for p in window) / len(window), 3) if window else None,
        probes=len(window), error=last.error if last and not last.ok else None)


def read_status(config: Config, control: ControlStore) -> Status:
    pointer = control.ensure_pointer(config.primary())
    now = dt.datetime.now(dt.timezone.utc)
    providers = [provider_status(config, control, name, pointer.provider, now) for name in config.providers]
    current = next((p for p in providers if p.active), None)  # None: the pointer names a provider no longer configured
    return Status(current_provider=pointer.provider, epoch=pointer.epoch, since=pointer.since, reason=pointer.reason,
                  health=current.health if current else "unknown", last_check=current and current.last_check,
                  response_time_ms=current and current.response_time_ms, uptime=current and current.uptime,
                  providers=providers)
