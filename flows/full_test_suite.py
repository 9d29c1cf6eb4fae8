"""Flow `full_test_suite`: connection, CRUD, auth, storage, performance, load and migration tests per provider,
each in scratch collections that are dropped afterwards, published as a markdown and a table artifact
("test-suite-report", "test-suite-matrix") and as JSON and HTML files.

Connections are tested concurrently; the other categories run one provider at a time, so the figures of one provider
are not disturbed by another's load. A provider whose connection fails has its other categories skipped with that
reason. The flow run completes whatever the tests found: the report (and `shiftover test-suite`'s exit status) says
whether any test failed.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from prefect import flow, get_run_logger

from shiftover.adapters.config import load_config
from shiftover.tasks.testsuite import (
    auth_tests,
    connection_tests,
    crud_tests,
    load_tests,
    migration_tests,
    performance_tests,
    publish_report,
    skipped,
    storage_tests,
)
from shiftover.tasks.testsuite_model import (
    CATEGORIES,
    CategoryOutcome,
    SuitePlan,
    TestSuiteParams,
    TestSuiteReport,
    advise,
    summarize,
)


def migration_partner(providers: list[str], provider: str, healthy: set[str], named: str | None) -> str | None:
    """The named partner, else the next healthy provider after this one in the list, else None (scratch memory)."""
    if named:
        return named
    i = providers.index(provider)
    for other in providers[i + 1:] + providers[:i]:
        if other in healthy and other != provider:
            return other
    return None


@flow(name="full_test_suite", log_prints=False, validate_parameters=True)
def full_test_suite(params: TestSuiteParams) -> TestSuiteReport:
    logger = get_run_logger()
    config = load_config(params.config_path)
    providers = list(dict.fromkeys(params.providers or config.providers))
    categories = [c for c in CATEGORIES if c in params.categories]
    plan = SuitePlan(run_id=uuid.uuid4().hex[:8], config_path=str(config.path), data_size=params.data_size,
                     concurrent_users=params.concurrent_users, duration_s=params.duration_s,
                     max_error_rate=params.max_error_rate)
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    logger.info("Test suite %s: %s on %s", plan.run_id, ", ".join(categories), ", ".join(providers))
    futures = {p: connection_tests.submit(plan, p) for p in providers}
    connection = {p: f.result() for p, f in futures.items()}
    healthy = {p for p, o in connection.items() if o.status == "passed"}
    outcomes: list[CategoryOutcome] = []
    for p in providers:
        if "connection" in categories:
            outcomes.append(connection[p])
        for category in categories:
            if category == "connection":
                continue
            if p not in healthy:
                outcomes.append(skipped(p, category, "not run: the connection test failed"))
            elif category == "crud":
                outcomes.append(crud_tests(plan, p))
            elif category == "auth":
                outcomes.append(auth_tests(plan, p))
            elif category == "storage":
                outcomes.append(storage_tests(plan, p))
            elif category == "performance":
                outcomes.append(performance_tests(plan, p))
            elif category == "load":
                outcomes.append(load_tests(plan, p))
            elif category == "migration":
                partner = migration_partner(providers, p, healthy, params.migration_partner)
                outcomes.append(migration_tests(plan, p, partner))
    recommendations, warnings, errors = advise(outcomes)
    report = TestSuiteReport(
        id=plan.run_id, started=started, finished=dt.datetime.now(dt.timezone.utc),
        seconds=round(time.perf_counter() - clock, 2), providers=providers,
        categories=categories,
        data_size=params.data_size, concurrent_users=params.concurrent_users, duration_s=params.duration_s,
        outcomes=outcomes, summary=summarize(outcomes), recommendations=recommendations, warnings=warnings,
        errors=errors)
    report = publish_report(report, params.output_dir)
    s = report.summary
    logger.info("Test suite %s: %d passed, %d failed, %d skipped; report %s", plan.run_id, s.passed, s.failed,
                s.skipped, report.files.get("html"))
    return report
