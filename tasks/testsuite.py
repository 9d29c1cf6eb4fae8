"""Prefect tasks of the full test suite: one task per category and provider, and one that publishes the report.

Category tasks never fail for a failing provider: failures are the report's content. They are not retried (a
retried test would hide the flakiness it should report) and not cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from shiftover.adapters.base import Adapter
from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError
from shiftover.adapters.registry import adapter_class, open_adapter
from shiftover.tasks import testsuite_categories as cat
from shiftover.tasks import testsuite_performance as perf
from shiftover.tasks.testsuite_model import Category, CategoryOutcome, SuitePlan, TestSuiteReport
from shiftover.tasks.testsuite_render import render_html, render_markdown, table_rows

REPORT_KEY = "test-suite-report"
MATRIX_KEY = "test-suite-matrix"
_SECRET_OPTION = re.compile(r"key|secret|token|password|credential", re.I)


def secrets_of(config: Config) -> list[str]:
    """Every secret the configuration holds: URL passwords, whole URLs with credentials, secret-looking options."""
    out: list[str] = []
    for p in config.providers.values():
        if p.url is not None:
            url = p.url.get_secret_value()
            with suppress(ValueError):
                parts = urlsplit(url)
                if parts.password:
                    out += [parts.password, url]
        for k, v in p.options.items():
            if _SECRET_OPTION.search(k) and isinstance(v, str):
                out.append(v)
    return [s for s in out if len(s) >= 3]


def scratch_partner(plan: SuitePlan) -> Adapter:
    cls = adapter_class("memory")
    return cls("scratch-memory", f"memory://{plan.scratch('partner')}", cls.Options())


def _run(plan: SuitePlan, provider: str, category: Category,
         body: Callable[[Config, Adapter, cat.Recorder], CategoryOutcome]) -> CategoryOutcome:
    """Open the provider, run the category, and turn an error outside any test case into a failed case."""
    try:
        config = load_config(plan.config_path)
    except BackendError as exc:
        rec = cat.Recorder(provider, category, [])
        with rec.case("configuration"):
            raise exc
        return rec.finish()
    rec = cat.Recorder(provider, category, secrets_of(config))
    try:
        with open_adapter(config, provider) as adapter:
            return body(config, adapter, rec)
    except BackendError as exc:
        with rec.case("open the provider" if not rec.tests else "scratch collections"):
            raise exc
        return rec.finish()


@task(cache_policy=NO_CACHE, task_run_name="connection-{provider}")
def connection_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    return _run(plan, provider, "connection", lambda _c, a, rec: cat.connection(a, plan, rec))


@task(cache_policy=NO_CACHE, task_run_name="crud-{provider}")
def crud_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    return _run(plan, provider, "crud", lambda _c, a, rec: cat.crud(a, plan, rec))


@task(cache_policy=NO_CACHE, task_run_name="auth-{provider}")
def auth_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    return _run(plan, provider, "auth", lambda _c, a, rec: cat.auth(a, plan, rec))


@task(cache_policy=NO_CACHE, task_run_name="storage-{provider}")
def storage_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    return _run(plan, provider, "storage", lambda _c, a, rec: cat.storage(a, plan, rec))


@task(cache_policy=NO_CACHE, task_run_name="performance-{provider}")
def performance_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    return _run(plan, provider, "performance", lambda _c, a, rec: perf.performance(a, plan, rec))


@task(cache_policy=NO_CACHE, task_run_name="load-{provider}")
def load_tests(plan: SuitePlan, provider: str) -> CategoryOutcome:
    def body(config: Config, _adapter: Adapter, rec: cat.Recorder) -> CategoryOutcome:
        return perf.load(lambda: open_adapter(config, provider), plan, rec)

    return _run(plan, provider, "load", body)


@task(cache_policy=NO_CACHE, task_run_name="migration-{provider}")
def migration_tests(plan: SuitePlan, provider: str, partner: str | None) -> CategoryOutcome:
    def body(config: Config, adapter: Adapter, rec: cat.Recorder) -> CategoryOutcome:
        other = open_adapter(config, partner) if partner else scratch_partner(plan)
        try:
            with other:
                return cat.migration(adapter, other, plan, rec)
        finally:
            if partner is None:
                adapter_class("memory").reset(plan.scratch("partner"))  # type: ignore[attr-defined]

    return _run(plan, provider, "migration", body)


def skipped(provider: str, category: Category, reason: str) -> CategoryOutcome:
    return cat.Recorder(provider, category, []).skip_all(reason)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def publish_report(report: TestSuiteReport, output_dir: str) -> TestSuiteReport:
    """Write the JSON and HTML files, then the markdown and table artifacts under their stable keys."""
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    json_file, html_file = out / f"test-suite-{report.id}.json", out / f"test-suite-{report.id}.html"
    report = report.model_copy(update={"files": {"json": str(json_file), "html": str(html_file)}})
    json_file.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    html_file.write_text(render_html(report), encoding="utf-8")
    s = report.summary
    create_markdown_artifact(key=REPORT_KEY, markdown=render_markdown(report),
                             description=f"Test suite {report.id}: {s.passed} passed, {s.failed} failed, "
                                         f"{s.skipped} skipped")
    create_table_artifact(key=MATRIX_KEY, table=table_rows(report),
                          description="Provider × category: passed/failed/skipped tests")
    return report
