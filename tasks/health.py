"""Health tasks: probe a provider with a hard timeout, record it, and judge its state over the policy window.

States: `healthy` (last probe ok, latency, error rate and availability within the policy), `degraded` (answering, but
slow or failing more often than the policy allows), `down` (the last probe failed). A change of state is a Prefect
event `shiftover.provider.<state>` on resource `shiftover.provider.<name>`, so users can attach automations to it.

Debounce: a provider's state changes only once `health.debounce` consecutive sweeps (default 2) observe the new state;
until then the sweep reports the held state and the observation as pending. A probe's timeout counts from the
probe's own start (after its driver is imported and its adapter opened), not from when the sweep queued it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import Config, HealthPolicy, load_config
from shiftover.adapters.errors import ConnectionTimeout, redact
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from shiftover.tasks.migration import control_store
from shiftover.tasks.retry import retry_if_transient

STATES = ("healthy", "degraded", "down")


OPEN_LIMIT_S = 30.0  # importing a driver and opening an adapter on a very busy machine; not the probe's timeout


def probe_with_timeout(config: Config, name: str, *, timeout_s: float, canary: bool) -> ProbeResult:
    """Probe in a helper thread and give up `timeout_s` after the probe itself started; never raises."""
    box: list[ProbeResult] = []
    started: list[float] = []
    opened = threading.Event()
    start = time.perf_counter()

    def run() -> None:
        try:
            with open_adapter(config, name) as adapter:
                started.append(time.monotonic())
                opened.set()
                box.append(adapter.probe(canary=canary))
        except Exception as exc:  # noqa: BLE001 - opening the adapter failed; the probe reports it
            box.append(ProbeResult(name, False, (time.perf_counter() - start) * 1000, redact(str(exc))))
        finally:
            opened.set()

    worker = threading.Thread(target=run, name=f"probe-{name}", daemon=True)
    worker.start()
    opened.wait(max(OPEN_LIMIT_S, timeout_s))
    if started:
        worker.join(max(0.0, started[0] + timeout_s - time.monotonic()))
    else:
        worker.join(0.05)
    if box:
        result = box[0]
        if result.ok and result.latency_ms > timeout_s * 1000:
            return ProbeResult(name, False, result.latency_ms, f"answered after {result.latency_ms:.0f} ms, over "
                               f"the {timeout_s:g} s timeout", result.checks, result.at)
        return result
    if not started:
        err = ConnectionTimeout(f"could not even open the adapter within {max(OPEN_LIMIT_S, timeout_s):g} s",
                                provider=name)
        return ProbeResult(name, False, (time.perf_counter() - start) * 1000, str(err))
    err = ConnectionTimeout(f"no answer within {timeout_s:g} s", provider=name)
    return ProbeResult(name, False, timeout_s * 1000, str(err))


@dataclass(frozen=True)
class ProviderHealth:
    provider: str
    kind: str
    role: str
    active: bool
    status: str
    ok: bool
    latency_ms: float
    error: str | None
    uptime: float | None  # share of successful probes over the window
    probes: int
    checks: tuple[str, ...]
    previous: str | None
    observed: str | None = None  # what this sweep alone saw, when the debounce still holds `status`
    pending: int = 0  # consecutive sweeps that saw `observed` so far
    debounce: int = 1  # sweeps that must agree before `status` changes

    def row(self) -> dict[str, object]:
        return {
            "provider": self.provider + (" (active)" if self.active else ""),
            "kind": self.kind,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "error": self.error or "",
            "uptime": "-" if self.uptime is None else f"{self.uptime * 100:.2f}%",
            "probes": self.probes,
            "checks": ",".join(self.checks),
            "pending": f"{self.observed} {self.pending}/{self.debounce}" if self.pending else "",
        }


def judge(result: ProbeResult, history: list[ProbeResult], policy: HealthPolicy) -> tuple[str, float | None]:
    """The state from the latest probe and the window's history (which includes it)."""
    uptime = sum(p.ok for p in history) / len(history) if history else None
    if not result.ok:
        return "down", uptime
    error_rate = 1 - uptime if uptime is not None else 0.0
    slow = result.latency_ms > policy.response_time_ms
    if slow or error_rate > policy.error_rate or (uptime is not None and uptime < policy.availability):
        return "degraded", uptime
    return "healthy", uptime


def assess(config: Config, control: ControlStore, result: ProbeResult, active: str) -> ProviderHealth:
    """Record the probe, judge the state over the window, store it once `health.debounce` sweeps agree, and emit an
    event if it changed."""
    control.record_probe(result, kept=config.health.kept())
    since = result.at - dt.timedelta(seconds=config.health.window_s)
    history = control.probes(result.provider, since=since, limit=100_000)
    observed, uptime = judge(result, history, config.health)
    status, previous, pending = control.settle_health_state(result.provider, observed, config.health.debounce)
    if previous != status:
        emit_event(
            event=f"shiftover.provider.{status}",
            resource={"prefect.resource.id": f"shiftover.provider.{result.provider}",
                      "prefect.resource.name": result.provider},
            payload={"previous": previous, "status": status, "latency_ms": round(result.latency_ms, 1),
                     "error": result.error, "uptime": uptime, "active": result.provider == active},
        )
    p = config.providers[result.provider]
    return ProviderHealth(result.provider, p.kind, p.role, result.provider == active, status, result.ok,
                          result.latency_ms, result.error, uptime, len(history), result.checks, previous,
                          observed if pending else None, pending, config.health.debounce)


@task(cache_policy=NO_CACHE, task_run_name="probe-{provider}")
def probe_provider(config_path: str, provider: str, canary: bool | None = None) -> ProbeResult:
    """One probe with the policy's timeout (canary write/read/delete where the config allows). Not retried: a retry
    would hide the failure the sweep exists to see."""
    config = load_config(config_path)
    use_canary = config.health.canary if canary is None else canary
    return probe_with_timeout(config, provider, timeout_s=config.health.timeout_s, canary=use_canary)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=retry_if_transient)
def record_health(config_path: str, results: list[ProbeResult]) -> list[ProviderHealth]:
    config = load_config(config_path)
    with control_store(config) as control:
        active = control.ensure_pointer(config.primary()).provider
        return [assess(config, control, r, active) for r in results]
