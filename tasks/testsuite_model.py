"""The test suite's parameters, results and report: plain pydantic models, the same in artifacts, JSON and HTML.

A category a provider does not offer, or one that cannot run because the provider's connection failed, is `skipped`
with its reason, never `passed`. The success rate counts passed / (passed + failed); skipped tests are listed apart.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, Field

Category = Literal["connection", "crud", "auth", "storage", "performance", "load", "migration"]
CATEGORIES: tuple[str, ...] = get_args(Category)
Status = Literal["passed", "failed", "skipped"]
DataSize = Literal["small", "medium", "large"]

RECORDS = {"small": 200, "medium": 2_000, "large": 20_000}  # records seeded for CRUD batches, load and migration
SAMPLES = {"small": 30, "medium": 100, "large": 300}  # timed calls per operation in the performance category
SCRATCH_PREFIX = "_shiftover_ts_"


class TestSuiteParams(BaseModel):
    __test__: ClassVar[bool] = False  # not a pytest class

    providers: list[str] | None = Field(None, description="provider names in backends.yaml; empty means all")
    categories: list[Category] = Field(list(get_args(Category)), description="which categories to run")
    data_size: DataSize = Field("small", description="small: 200 records, medium: 2,000, large: 20,000")
    concurrent_users: int = Field(4, ge=1, le=64, description="clients in the load test, each with its own connection")
    duration_s: float = Field(3.0, gt=0, le=600, description="how long the load test runs, in seconds")
    max_error_rate: float = Field(0.01, ge=0, le=1, description="the load test fails above this share of errors")
    migration_partner: str | None = Field(
        None, description="provider to migrate to and back from; default: the next healthy provider in the list, "
                          "else a scratch in-memory backend")
    output_dir: str = Field("test-output/test-suite", description="where the JSON and HTML reports are written")
    config_path: str = Field("backends.yaml", description="path of backends.yaml as seen by the worker")


class SuitePlan(BaseModel):
    """What every category task needs: resolved once by the flow."""

    run_id: str
    config_path: str
    data_size: DataSize
    concurrent_users: int
    duration_s: float
    max_error_rate: float

    @property
    def records(self) -> int:
        return RECORDS[self.data_size]

    @property
    def samples(self) -> int:
        return SAMPLES[self.data_size]

    def scratch(self, label: str) -> str:
        return f"{SCRATCH_PREFIX}{self.run_id}_{label}"


class TestCase(BaseModel):
    __test__: ClassVar[bool] = False  # not a pytest class

    provider: str
    category: Category
    name: str
    status: Status
    seconds: float = 0.0
    detail: str = ""
    error: str | None = None


class OperationStats(BaseModel):
    provider: str
    operation: str
    samples: int
    records_per_call: int = 1
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    ops_per_s: float
    records_per_s: float


class LoadStats(BaseModel):
    provider: str
    users: int
    seconds: float
    operations: int
    errors: int
    ops_per_s: float
    error_rate: float
    p95_ms: float


class CategoryOutcome(BaseModel):
    provider: str
    category: Category
    status: Status
    reason: str = ""  # why it was skipped, or the first failure
    tests: list[TestCase] = Field(default_factory=list)
    operations: list[OperationStats] = Field(default_factory=list)
    load: LoadStats | None = None
    memory_rss_mb: float | None = None
    memory_delta_mb: float | None = None
    batch_efficiency: float | None = None
    notes: list[str] = Field(default_factory=list)  # observations that become warnings


class Summary(BaseModel):
    total: int
    passed: int
    failed: int
    skipped: int
    success_rate: float  # passed / (passed + failed); 1.0 when nothing ran


class TestSuiteReport(BaseModel):
    __test__: ClassVar[bool] = False  # not a pytest class

    id: str
    started: dt.datetime
    finished: dt.datetime
    seconds: float
    providers: list[str]
    categories: list[Category]
    data_size: DataSize
    concurrent_users: int
    duration_s: float
    outcomes: list[CategoryOutcome]
    summary: Summary
    recommendations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)

    def outcome(self, provider: str, category: str) -> CategoryOutcome | None:
        for o in self.outcomes:
            if o.provider == provider and o.category == category:
                return o
        return None


def category_status(tests: list[TestCase]) -> tuple[Status, str]:
    failed = [t for t in tests if t.status == "failed"]
    if failed:
        return "failed", f"{failed[0].name}: {failed[0].error or failed[0].detail}"
    if not tests or all(t.status == "skipped" for t in tests):
        return "skipped", tests[0].detail if tests else "no tests ran"
    return "passed", ""


def summarize(outcomes: list[CategoryOutcome]) -> Summary:
    tests = [t for o in outcomes for t in o.tests]
    passed = sum(t.status == "passed" for t in tests)
    failed = sum(t.status == "failed" for t in tests)
    skipped = sum(t.status == "skipped" for t in tests)
    ran = passed + failed
    return Summary(total=len(tests), passed=passed, failed=failed, skipped=skipped,
                   success_rate=round(passed / ran, 4) if ran else 1.0)


SLOW_READ_P95_MS = 50.0


def advise(outcomes: list[CategoryOutcome]) -> tuple[list[str], list[str], list[str]]:
    """Recommendations, warnings and errors drawn from the outcomes (plain rules, listed in the report)."""
    recs: list[str] = []
    warnings: list[str] = [n for o in outcomes for n in o.notes]
    errors = [f"{t.provider} / {t.category} / {t.name}: {t.error or t.detail}"
              for o in outcomes for t in o.tests if t.status == "failed"]
    providers = list(dict.fromkeys(o.provider for o in outcomes))
    for p in providers:
        mine = {o.category: o for o in outcomes if o.provider == p}
        conn = mine.get("connection")
        if conn is not None and conn.status == "failed":
            recs.append(f"{p}: fix the connection first ({conn.reason}); its other categories did not run.")
            continue
        failed = [c for c, o in mine.items() if o.status == "failed"]
        if failed:
            recs.append(f"{p}: do not fail over or migrate to it until {', '.join(failed)} pass.")
        elif mine:
            recs.append(f"{p}: every category that ran passed; it can serve as a standby or migration target.")
        perf = mine.get("performance")
        if perf is not None:
            for op in perf.operations:
                if op.operation in ("get", "find") and op.p95_ms > SLOW_READ_P95_MS:
                    recs.append(f"{p}: {op.operation} p95 is {op.p95_ms:.0f} ms (> {SLOW_READ_P95_MS:.0f} ms); check "
                                "indexes on filtered fields and the network path to the server.")
            if perf.batch_efficiency is not None and perf.batch_efficiency >= 2:
                recs.append(f"{p}: write in batches: batches of 100 wrote {perf.batch_efficiency}× the records/s "
                            "of single inserts.")
        load = mine.get("load")
        if load is not None and load.load is not None and load.load.errors:
            recs.append(f"{p}: {load.load.errors} error(s) under {load.load.users} concurrent clients; raise the "
                        "pool size or lower the concurrency, and look at the errors below.")
    reads = [(op.p95_ms, o.provider) for o in outcomes if o.category == "performance"
             for op in o.operations if op.operation == "get"]
    if len(reads) > 1:
        best = min(reads)
        recs.append(f"Lowest read latency: {best[1]} (get p95 {best[0]:.2f} ms).")
    for service in ("auth", "storage"):
        lacking = [o.provider for o in outcomes if o.category == service and "does not offer" in o.reason]
        if lacking:
            warnings.append(f"{service} is not offered by {', '.join(lacking)}: an app that needs {service} must "
                            "keep it on another provider.")
    for p in providers:
        not_run = [o.category for o in outcomes if o.provider == p and o.reason.startswith("not run")]
        if not_run:
            warnings.append(f"{p}: {', '.join(not_run)} not run because its connection test failed.")
    return recs, warnings, errors
