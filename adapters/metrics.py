"""What the router measures: per provider and operation, the latency of each call and the errors by code.

`Backend.metrics()` returns a `Metrics` model (percentiles p50/p95/p99 over the last `window` calls of each provider
and operation, with totals since the Backend was made) and `Metrics.prometheus()` renders it in the Prometheus text
exposition format (a summary `shiftover_operation_duration_seconds` and a counter `shiftover_operation_errors_total`).
Each try counts: a write the router retries while a freeze holds is one refused call (BACKEND_010) per try; writes
repeated on mirrors count under `mirror.<operation>` of the mirror.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from pydantic import BaseModel

WINDOW = 2048  # latest calls per provider and operation that the percentiles are taken over


class OperationStats(BaseModel):
    provider: str
    operation: str
    calls: int  # since the Backend was made
    errors: dict[str, int]  # BACKEND_xxx code -> calls that raised it
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    total_ms: float


class Metrics(BaseModel):
    operations: list[OperationStats]

    def get(self, provider: str, operation: str) -> OperationStats | None:
        return next((o for o in self.operations if (o.provider, o.operation) == (provider, operation)), None)

    def prometheus(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        out = ["# HELP shiftover_operation_duration_seconds Latency of calls to providers by provider and operation.",
               "# TYPE shiftover_operation_duration_seconds summary"]
        for o in self.operations:
            labels = f'provider="{_label(o.provider)}",operation="{_label(o.operation)}"'
            for q, value in (("0.5", o.p50_ms), ("0.95", o.p95_ms), ("0.99", o.p99_ms)):
                if value is not None:
                    out.append(f'shiftover_operation_duration_seconds{{{labels},quantile="{q}"}} {value / 1000:.6f}')
            out.append(f"shiftover_operation_duration_seconds_sum{{{labels}}} {o.total_ms / 1000:.6f}")
            out.append(f"shiftover_operation_duration_seconds_count{{{labels}}} {o.calls}")
        out += ["# HELP shiftover_operation_errors_total Calls to providers that raised a Shiftover error, by code.",
                "# TYPE shiftover_operation_errors_total counter"]
        for o in self.operations:
            for code, n in sorted(o.errors.items()):
                out.append(f'shiftover_operation_errors_total{{provider="{_label(o.provider)}",'
                           f'operation="{_label(o.operation)}",code="{_label(code)}"}} {n}')
        return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def percentile(sorted_ms: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return None
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


@dataclass
class _Series:
    latest: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    calls: int = 0
    total_ms: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


class Recorder:
    """Thread-safe; bounded memory (WINDOW latencies per provider and operation)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def record(self, provider: str, operation: str, ms: float, error: str | None = None) -> None:
        with self._lock:
            series = self._series.setdefault((provider, operation), _Series())
            series.latest.append(ms)
            series.calls += 1
            series.total_ms += ms
            if error is not None:
                series.errors[error] += 1

    def snapshot(self) -> Metrics:
        with self._lock:
            items = [(key, sorted(s.latest), s.calls, s.total_ms, dict(s.errors))
                     for key, s in sorted(self._series.items())]
        return Metrics(operations=[
            OperationStats(provider=p, operation=op, calls=calls, errors=errors, p50_ms=percentile(ms, 0.5),
                           p95_ms=percentile(ms, 0.95), p99_ms=percentile(ms, 0.99), total_ms=total)
            for (p, op), ms, calls, total, errors in items])
