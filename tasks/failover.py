"""Failover pieces: rank standbys, fence an old primary, lift a fence, and the monitor's policy.

Fencing has three layers: the epoch (the pointer moves by compare-and-swap, so a writer holding the old epoch is
refused by the router), a whole-backend freeze flag in the control store (`*`), and — where the old primary still
answers — the engine's own write freeze (on PostgreSQL a trigger on every table), so applications that talk to the
database directly are refused too. An old primary that was down during the failover is fenced in the engine as soon
as it answers again (`fence_returning`, run by the monitor and by every health sweep).

`MonitorPolicy` is plain Python: the monitor in `shiftover serve` feeds it one probe of the active provider per
interval and it says when to fail over (consecutive failures, enabled, cool-down) and when to fail back (automatic
failback only, after the preferred provider has answered every probe for failback_stable_s).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, ConnectionTimeout, HealthCheckFailed, StandbyNotInSync
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore, Pointer, now
from shiftover.control.syncstate import SyncStates
from shiftover.tasks.health import probe_with_timeout
from shiftover.tasks.migration import control_store
from shiftover.tasks.retry import RETRYABLE
from shiftover.tasks.sync import records_at_risk


@dataclass(frozen=True)
class Candidate:
    provider: str
    rank: int  # position in failover.fallback, else priority
    healthy: bool
    latency_ms: float
    lag_s: float | None
    error: str | None
    not_in_sync: str | None = None  # what is at risk when switching to it (None: its sync completed, lag known)

    def row(self) -> dict[str, object]:
        return {"provider": self.provider, "rank": self.rank, "healthy": self.healthy,
                "latency_ms": round(self.latency_ms, 1), "lag_s": "never synced" if self.lag_s is None
                else round(self.lag_s, 2), "in_sync": self.not_in_sync is None,
                "error": self.error or self.not_in_sync or ""}


def rank(config: Config, name: str) -> int:
    order = config.failover.fallback
    return order.index(name) if name in order else len(order) + config.providers[name].priority


def rank_candidates(config: Config, control: ControlStore, active: str, only: str | None = None) -> list[Candidate]:
    """Every other provider (or just `only`), probed at once; best first: healthy, then rank, then least lag."""
    fenced = {f.provider for f in control.fences()}
    names = [only] if only else [n for n, p in config.providers.items()
                                 if n != active and p.role != "none" and n not in fenced]
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        probes = list(pool.map(lambda n: probe_with_timeout(config, n, timeout_s=config.health.timeout_s,
                                                            canary=False), names))
    out = []
    states = SyncStates(control)
    for probe in probes:
        control.record_probe(probe, kept=config.health.kept())
        out.append(Candidate(probe.provider, rank(config, probe.provider), probe.ok, probe.latency_ms,
                             control.lag_s(active, probe.provider), probe.error,
                             states.readiness(active, probe.provider)))
    return sorted(out, key=lambda c: (not c.healthy, c.not_in_sync is not None, c.rank,
                                      float("inf") if c.lag_s is None else c.lag_s))


def _within(seconds: float, call: Callable[[], object], provider: str) -> None:
    """Run `call` in a helper thread; raise ConnectionTimeout if it has not finished in time."""
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(seconds):
        raise ConnectionTimeout(f"no answer within {seconds:g} s", provider=provider)
    if errors:
        raise errors[0]


def engine_fence(config: Config, provider: str, reason: str) -> bool:
    """Make the provider's engine refuse writes on every collection; False if it does not answer in time."""
    def freeze() -> None:
        with open_adapter(config, provider) as adapter:
            adapter.freeze(adapter.collections(), reason=reason)

    try:
        _within(max(config.health.timeout_s, 1.0) * 2, freeze, provider)
    except BackendError:
        return False
    return True


def fence(config: Config, control: ControlStore, provider: str, *, epoch: int, reason: str) -> bool:
    control.set_freeze(provider, ["*"], run_id=None, reason=reason)
    control.add_fence(provider, epoch=epoch, reason=reason)
    if engine_fence(config, provider, reason):
        control.mark_engine_fenced(provider)
        return True
    return False


def unfence(config: Config, control: ControlStore, provider: str) -> None:
    """Lift a fence (failback): the engine's freeze first, then the flags. Raises if the engine does not answer."""
    with open_adapter(config, provider) as adapter:
        adapter.unfreeze(adapter.frozen())
    control.clear_freeze(provider, ["*"])
    control.clear_fence(provider)


@dataclass(frozen=True)
class ReturnedPrimary:
    provider: str
    active: str
    records_at_risk: int | None


def fence_pending(config: Config, control: ControlStore) -> list[ReturnedPrimary]:
    """Fence in the engine every old primary that was down when it was replaced and answers now."""
    out = []
    pointer = control.ensure_pointer(config.primary())
    for f in control.fences():
        if f.engine_fenced or f.provider == pointer.provider:
            continue
        if engine_fence(config, f.provider, f.reason):
            control.mark_engine_fenced(f.provider)
            try:
                at_risk: int | None = records_at_risk(config, control, f.provider, pointer.provider)
            except BackendError:
                at_risk = None
            out.append(ReturnedPrimary(f.provider, pointer.provider, at_risk))
    return out


# -- tasks -------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailoverPlan:
    pointer: Pointer
    candidates: list[Candidate]
    target: str | None
    why_not: str | None = None
    not_in_sync: str | None = None  # the chosen target's sync problem, if it has one


@task(**RETRYABLE)
def plan_failover(config_path: str, to: str | None) -> FailoverPlan:
    config = load_config(config_path)
    with control_store(config) as control:
        pointer = control.ensure_pointer(config.primary())
        if to is not None:
            if to not in config.providers:
                from shiftover.adapters.registry import provider_config

                provider_config(config, to)
            if to == pointer.provider:
                return FailoverPlan(pointer, [], None, f"{to!r} is already the active backend")
        candidates = rank_candidates(config, control, pointer.provider, only=to)
        best = next((c for c in candidates if c.healthy), None)  # in-sync standbys sort first among the healthy
        if best is None:
            why = "no healthy standby: " + "; ".join(f"{c.provider}: {c.error}" for c in candidates) if candidates \
                else "no standby is configured (role: standby)"
            return FailoverPlan(pointer, candidates, None, why)
        return FailoverPlan(pointer, candidates, best.provider, not_in_sync=best.not_in_sync)


@task(cache_policy=NO_CACHE)
def primary_answers(config_path: str, provider: str) -> bool:
    """Whether the old primary answers now (so the final delta can bring an unsynced standby up to date)."""
    config = load_config(config_path)
    return probe_with_timeout(config, provider, timeout_s=config.health.timeout_s, canary=False).ok


@task(**RETRYABLE)
def not_in_sync(config_path: str, source: str, target: str) -> str | None:
    config = load_config(config_path)
    with control_store(config) as control:
        return SyncStates(control).readiness(source, target)


def refuse_unsynced(old: str, target: str, problem: str) -> StandbyNotInSync:
    return StandbyNotInSync(
        f"will not switch to {target!r}: {problem}; records written on {old!r} and not on {target!r} would be lost, "
        "and records deleted there could come back", provider=target,
        hint=f"run `shiftover sync` while {old!r} answers, or pass --force to switch anyway and accept that loss")


@task(cache_policy=NO_CACHE)
def undo_fence(config_path: str, provider: str, engine_fenced: bool) -> None:
    """A failover that refused after fencing gives the old primary back its writes (it stays the active one)."""
    config = load_config(config_path)
    with control_store(config) as control:
        if engine_fenced:
            unfence(config, control, provider)
        else:
            control.clear_freeze(provider, ["*"])
            control.clear_fence(provider)


@task(cache_policy=NO_CACHE)
def fence_old_primary(config_path: str, provider: str, epoch: int, reason: str) -> bool:
    """Not retried: an old primary that does not answer is fenced later, when it does (`fence_returning`)."""
    config = load_config(config_path)
    with control_store(config) as control:
        return fence(config, control, provider, epoch=epoch, reason=reason)


@task(**RETRYABLE)
def unfence_target(config_path: str, provider: str) -> bool:
    """Before failing back to a former primary: lift its fence so the final delta and the application can write."""
    config = load_config(config_path)
    with control_store(config) as control:
        if provider not in {f.provider for f in control.fences()} and not any(
                f.collection == "*" for f in control.freezes(provider)):
            return False
        unfence(config, control, provider)
        return True


@task(cache_policy=NO_CACHE)
def count_at_risk(config_path: str, source: str, target: str) -> int:
    config = load_config(config_path)
    with control_store(config) as control:
        return records_at_risk(config, control, source, target)


@task(cache_policy=NO_CACHE)
def fence_returning(config_path: str) -> list[str]:
    config = load_config(config_path)
    logger = get_run_logger()
    with control_store(config) as control:
        returned = fence_pending(config, control)
    for r in returned:
        logger.warning("old primary %s answered again and is now fenced in its engine; %s record(s) written on it "
                       "are not on %s", r.provider, "unknown" if r.records_at_risk is None else r.records_at_risk,
                       r.active)
    return [r.provider for r in returned]


def require_healthy(plan: FailoverPlan) -> str:
    if plan.target is None:
        raise HealthCheckFailed(f"cannot fail over: {plan.why_not}",
                                hint="bring a standby up (shiftover health shows each provider) or name one with --to")
    return plan.target


# -- the monitor's policy ----------------------------------------------------------------------------------------------
@dataclass
class MonitorPolicy:
    """Decides from the active provider's probes; one instance per monitor. Times are UTC datetimes."""

    config: Config
    failures: int = 0
    first_failed_at: dt.datetime | None = None
    epoch: int | None = None
    ok_since: dict[str, dt.datetime] = field(default_factory=dict)

    def observe(self, result: ProbeResult, pointer: Pointer) -> bool:
        """Feed one probe of the active provider; True when a failover is due."""
        if pointer.epoch != self.epoch:  # a switch happened: start counting afresh on the new active provider
            self.epoch, self.failures, self.first_failed_at = pointer.epoch, 0, None
        if result.ok:
            self.failures, self.first_failed_at = 0, None
            return False
        self.failures += 1
        self.first_failed_at = self.first_failed_at or result.at
        policy = self.config.failover
        if not policy.enabled or self.failures < policy.consecutive_failures:
            return False
        return not self.cooling_down(pointer, result.at)

    def cooling_down(self, pointer: Pointer, at: dt.datetime) -> bool:
        """No second automatic switch within cooldown_s of the last one (epoch 1 is the initial pointer)."""
        return pointer.epoch > 1 and (at - pointer.since).total_seconds() < self.config.failover.cooldown_s

    def observe_preferred(self, result: ProbeResult) -> None:
        if result.ok:
            self.ok_since.setdefault(result.provider, result.at)
        else:
            self.ok_since.pop(result.provider, None)

    def failback_due(self, pointer: Pointer, at: dt.datetime | None = None) -> str | None:
        """The preferred provider to fail back to, when failback is automatic and it has been stable long enough."""
        policy = self.config.failover
        preferred = self.config.primary()
        at = at or now()
        if policy.failback != "automatic" or not policy.enabled or pointer.provider == preferred:
            return None
        since = self.ok_since.get(preferred)
        if since is None or (at - since).total_seconds() < policy.failback_stable_s:
            return None
        return None if self.cooling_down(pointer, at) else preferred
