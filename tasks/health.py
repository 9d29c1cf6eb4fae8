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
import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import Config, HealthPolicy, load_config
from shiftover.adapters.errors import ConnectionTimeout, redact
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.status import uptime as window_uptime
from shiftover.control.store import ControlStore
from shiftover.tasks.html_page import GRID, MUTED, SERIES, data_uri, legend, svg_open, x_axis
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
    uptime = window_uptime(history)
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


@dataclass(frozen=True)
class TrendPoint:
    """One provider's probes in one time bucket: how many, the share that succeeded, the median latency of those
    (None: no probe, or none answered)."""

    at: dt.datetime
    probes: int
    uptime: float | None
    latency_ms: float | None


def trend(probes: list[ProbeResult], start: dt.datetime, end: dt.datetime, buckets: int) -> list[TrendPoint]:
    """The probes in `buckets` equal slices of [start, end]; an empty slice has no values (the chart shows a gap)."""
    span = max((end - start).total_seconds(), 1.0)
    slots: list[list[ProbeResult]] = [[] for _ in range(buckets)]
    for p in probes:
        i = int((p.at - start).total_seconds() / span * buckets)
        slots[min(max(i, 0), buckets - 1)].append(p)
    out = []
    for i, slot in enumerate(slots):
        ok = sorted(p.latency_ms for p in slot if p.ok)
        out.append(TrendPoint(start + dt.timedelta(seconds=span * (i + 0.5) / buckets), len(slot),
                              len(ok) / len(slot) if slot else None, ok[len(ok) // 2] if ok else None))
    return out


def _series(points: list[tuple[float, float] | None], colour: str) -> str:
    """Polylines through the points, broken where a point is None; a lone point is a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for pt in points:
        if pt is None:
            runs.append([])
        else:
            runs[-1].append(pt)
    out = []
    for run in filter(None, runs):
        if len(run) == 1:
            out.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" fill="{colour}"/>')
        else:
            xy = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            out.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2"/>')
    return "".join(out)


def trend_svg(series: dict[str, list[TrendPoint]], start: dt.datetime, end: dt.datetime) -> str:
    """Two panels on one time axis: median latency (ms, one scale for every provider) and uptime (%), one coloured
    series per provider in each (a `<g class="series …" data-provider=…>`), the legend on the right."""
    left, width, panel, gap, top = 56, 440, 120, 44, 50
    names = list(series)
    key_w = 30 + 7 * max((len(n) for n in names), default=8)
    total, height = left + width + 16 + key_w, top + 2 * panel + gap + 36
    span = max((end - start).total_seconds(), 1.0)
    peak = max((p.latency_ms or 0.0 for pts in series.values() for p in pts), default=0.0) or 1.0
    x = lambda at: left + width * (at - start).total_seconds() / span  # noqa: E731
    out = svg_open(total, height, "Health over the kept history: latency and uptime")
    panels: list[tuple[str, str, str, str, float, Callable[[TrendPoint], float | None]]] = [
        ("latency", "median latency of the probes that answered", f"{peak:.0f} ms", "0 ms", top + panel,
         lambda p: None if p.latency_ms is None else p.latency_ms / peak),
        ("uptime", "uptime: share of probes that answered", "100%", "0%", top + 2 * panel + gap, lambda p: p.uptime)]
    for kind, title, high, low, bottom, share in panels:
        out.append(f'<rect x="{left}" y="{bottom - panel}" width="{width}" height="{panel}" fill="none" '
                   f'stroke="{GRID}"/><text x="{left - 6}" y="{bottom - panel + 10}" text-anchor="end" '
                   f'fill="{MUTED}">{high}</text><text x="{left - 6}" y="{bottom}" text-anchor="end" '
                   f'fill="{MUTED}">{low}</text><text x="{left}" y="{bottom - panel - 5}">{title}</text>')
        for i, name in enumerate(names):
            pts = [None if (v := share(p)) is None else (x(p.at), bottom - panel * v) for p in series[name]]
            out.append(f'<g class="series {kind}" data-provider="{html.escape(name)}"><title>{html.escape(name)} '
                       f'{kind}</title>{_series(pts, SERIES[i % len(SERIES)])}</g>')
    for i, name in enumerate(names):
        out.append(legend(left + width + 16, top + 4 + 18 * i, [(name, SERIES[i % len(SERIES)])], 0))
    out.append(x_axis(left, width, top + 2 * panel + gap + 6, f"{start:%m-%d %H:%M}", f"{end:%m-%d %H:%M} UTC"))
    return "".join(out) + "</svg>"


TREND_BUCKETS = 60
TREND_KEY = "health-trend"
TREND_EVERY_S = 300.0  # each chart is a new version of the artifact (~15 kB): a sweep every 30 s must not store each


def trend_due(every_s: float = TREND_EVERY_S) -> bool:
    """Whether the newest health-trend artifact is older than `every_s` (or there is none)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        newest = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[TREND_KEY])),
                                       sort=ArtifactSort.CREATED_DESC, limit=1)
    created = newest[0].created if newest else None
    return created is None or (dt.datetime.now(dt.timezone.utc) - created).total_seconds() >= every_s
TREND_PROBES = 50_000  # per provider, the newest: enough for a probe every minute over the default 30 days


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=retry_if_transient)
def health_trend(config_path: str, names: list[str]) -> str:
    """Markdown: latency and uptime of each named provider over the probes the control store keeps (history_days),
    drawn as one chart (a data-URI image, which the Prefect UI shows) and summed up in a table."""
    config = load_config(config_path)
    end = dt.datetime.now(dt.timezone.utc)
    kept = config.health.kept()
    with control_store(config) as control:
        probes = {n: control.probes(n, since=end - kept if kept else None, limit=TREND_PROBES) for n in names}
    start = min((p.at for ps in probes.values() for p in ps), default=end)
    chart = trend_svg({n: trend(ps, start, end, TREND_BUCKETS) for n, ps in probes.items()}, start, end)
    slice_s = max((end - start).total_seconds(), 1.0) / TREND_BUCKETS
    lines = ["# Health trend", "", f"![latency and uptime per provider]({data_uri(chart)})", "",
             f"From {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, every probe kept (health.history_days: "
             + (f"{config.health.history_days:g} days" if kept else "all") + f"), in {TREND_BUCKETS} slices of "
             f"{slice_s:,.0f} s: the median latency of the probes that answered, and the share that answered.", "",
             "| provider | probes | uptime | median ms |", "|---|---:|---:|---:|"]
    for name, ps in probes.items():
        ok = sorted(p.latency_ms for p in ps if p.ok)
        uptime = f"{len(ok) / len(ps):.2%}" if ps else "–"
        lines.append(f"| {name} | {len(ps):,} | {uptime} | {f'{ok[len(ok) // 2]:.1f}' if ok else '–'} |")
    return "\n".join(lines) + "\n"
