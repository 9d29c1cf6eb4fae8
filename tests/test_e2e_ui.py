"""End to end, as a user sees it: a real `prefect server` on a free port, the deployments served from
deployments/catalogue.py, the migrate and full_test_suite deployments run through the Prefect API with parameters, their
artifacts read back, and the report checked in the Prefect UI by a headless Chromium (Debian's `chromium`, driven by
Python Playwright; never `playwright install`), as is the migrate deployment's run form (source and target offer the
providers of backends.yaml) and its markdown description. One server for the module; the screenshots go to
test-output/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from shiftover.tasks.report_views import EQUAL
from tests.fixtures_clusters import free_port
from tests.helpers import config, write_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output"
T = TypeVar("T")


@dataclass(frozen=True)
class Server:
    api: str
    ui: str
    home: Path


def _wait(probe: Callable[[], T | None], timeout: float, what: str, step: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING", **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(PREFECT_HOME=str(home), PREFECT_API_URL=api, PREFECT_SERVER_UI_API_URL=api),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}; see {log.name}")
            return _healthy(f"{api}/health")

        _wait(up, 120, "prefect server's /api/health")
        yield Server(api, f"http://127.0.0.1:{port}", home)
    finally:
        _stop(proc)
        log.close()


def _client_call(api: str, call: Callable[[Any], Any]) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go() -> Any:
        with temporary_settings({PREFECT_API_URL: api}):
            async with get_client() as client:
                return await call(client)

    return asyncio.run(go())


@dataclass(frozen=True)
class Runs:
    migrate: Any
    suite: Any
    workdir: Path


@pytest.fixture(scope="module")
def runs(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Serve migrate and full-test-suite from deployments/catalogue.py, then run both through the API."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    work = tmp_path_factory.mktemp("e2e")
    cfg_path = write_config(work, {"shop": {"kind": "sqlite", "url": "sqlite:///shop.db", "role": "primary"},
                                   "shop_next": {"kind": "sqlite", "url": "sqlite:///shop_next.db"},
                                   "cache": {"kind": "memory", "url": "memory://cache"},
                                   "lab": {"kind": "sqlite", "url": "sqlite:///lab.db"}})
    with open_adapter(config(cfg_path), "shop") as shop:
        seed(shop, 600)
    script = ("import sys\nfrom prefect import serve\nfrom shiftover.deployments.catalogue import build_deployments\n"
              "wanted = {'migrate', 'full-test-suite'}\n"
              "serve(*[d for d in build_deployments(sys.argv[1], sweep_interval_s=3600, sync_interval_s=3600)"
              " if d.name in wanted], limit=4)\n")
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", script, str(cfg_path)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=_env(PREFECT_API_URL=server.api, PREFECT_HOME=str(server.home),
                                     PREFECT_RUNNER_POLL_FREQUENCY="2"))
    try:
        _wait(lambda: {d.name for d in _client_call(server.api, lambda c: c.read_deployments())} >= {
            "migrate", "full-test-suite"} or None, 90, "the served deployments", step=1)
        with temporary_settings({PREFECT_API_URL: server.api}):
            migrate_run = run_deployment("migrate/migrate", timeout=0, parameters={  # top-level, as the form sends
                "source": "shop", "target": "shop_next", "config_path": str(cfg_path)})
            suite_run = run_deployment("full_test_suite/full-test-suite", timeout=0, parameters={"params": {
                "providers": ["cache", "lab"], "data_size": "small", "concurrent_users": 2, "duration_s": 1,
                "config_path": str(cfg_path), "output_dir": str(work / "reports")}})

        def finished() -> list[Any] | None:
            got = [_client_call(server.api, lambda c, i=r.id: c.read_flow_run(i)) for r in (migrate_run, suite_run)]
            return got if all(r.state and r.state.is_final() for r in got) else None

        done = _wait(finished, 240, "both flow runs to finish", step=2)
        yield Runs(done[0], done[1], work)
    finally:
        _stop(proc, signal.SIGINT)
        log.close()


def _artifacts(api: str, flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = _client_call(api, lambda c: c.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))))
    return {a.key: a for a in found if a.key}


def _linked_file(artifact: Any) -> Path:
    """The file a link artifact points to (Prefect keeps it as markdown: `[text](file:///...)`)."""
    return Path(urllib.parse.urlparse(artifact.data.split("](", 1)[1].rstrip(")")).path)


def _table(artifact: Any) -> list[dict[str, Any]]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def _browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])  # Playwright gives it a temporary profile


def test_deployments_run_through_the_api_and_publish_their_artifacts(server: Server, runs: Runs) -> None:
    assert runs.migrate.state.is_completed(), runs.migrate.state.message
    assert runs.suite.state.is_completed(), runs.suite.state.message
    assert runs.suite.parameters["params"]["providers"] == ["cache", "lab"]
    assert runs.migrate.parameters["source"] == "shop"  # accepted by the server against the form's schema

    migrated = _artifacts(server.api, runs.migrate.id)
    assert "**Cut over.** `shop_next` is now the active backend" in migrated["migrate-shop-to-shop-next"].data
    rows = _table(migrated["migrate-shop-to-shop-next-table"])
    assert rows and all(r["verdict"] == EQUAL and r["source_rows"] == r["target_rows"] for r in rows)
    assert sum(r["source_rows"] for r in rows) == 600
    assert "![time per phase](data:image/svg+xml;base64," in migrated["migrate-shop-to-shop-next"].data
    link = migrated["migrate-shop-to-shop-next-html"]  # the self-contained page, as a link artifact
    page = _linked_file(link)
    assert link.data.startswith(f"[{page.name}](file://")  # Prefect keeps a link artifact as markdown
    assert page.suffix == ".html" and "Expectations (Great Expectations)" in page.read_text()

    suite = _artifacts(server.api, runs.suite.id)
    matrix = {r["provider"]: r for r in _table(suite["test-suite-matrix"])}
    assert set(matrix) == {"cache", "lab"}
    for provider, kind in (("cache", "memory"), ("lab", "sqlite")):
        row = matrix[provider]
        assert (row["connection"], row["crud"], row["performance"], row["load"], row["migration"]) == (
            "passed 3/3", "passed 9/9", "passed 8/8", "passed 2/2", "passed 3/3"), row
        assert row["auth"] == f"skipped: {kind} does not offer auth (capabilities.auth is false)"
        assert row["failed_tests"] == 0
    report = suite["test-suite-report"].data
    assert "All tests passed." in report and "![latency lab](data:image/svg+xml;base64," in report
    files = sorted((runs.workdir / "reports").glob("test-suite-*"))
    assert [f.suffix for f in files] == [".html", ".json"]
    assert json.loads(files[1].read_text())["summary"]["failed"] == 0


def test_the_ui_shows_the_report_table_on_the_flow_run(server: Server, runs: Runs) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); the browser test needs "
                    "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{server.ui}/runs/flow-run/{runs.suite.id}")
            page.get_by_text("Completed", exact=True).first.wait_for()
            page.get_by_text("Artifacts", exact=True).first.click()
            card = page.get_by_text("test-suite-report", exact=True)
            card.wait_for()
            assert page.get_by_text("test-suite-matrix", exact=True).count() == 1
            page.screenshot(path=str(SCREENSHOTS / "test-suite-flow-run-artifacts.png"))
            card.click()
            page.wait_for_url("**/artifacts/artifact/**")
            table = page.locator("table").first
            table.wait_for()
            assert table.locator("th").all_inner_texts()[:3] == ["provider", "connection", "crud"]
            cells = {r.split("\t")[0]: r.split("\t")[1:] for r in table.locator("tr").all_inner_texts()[1:]}
            assert set(cells) == {"cache", "lab"}
            assert cells["lab"][:2] == ["✓ 3/3", "✓ 9/9"]  # the markdown matrix's short cells (legend below it)
            charts = page.locator('img[src^="data:image/svg+xml;base64,"]')
            assert charts.count() == 2
            assert all(charts.nth(i).evaluate("e => e.complete && e.naturalWidth > 0") for i in range(2))
            page.screenshot(path=str(SCREENSHOTS / "test-suite-report-artifact.png"))
        finally:
            browser.close()
    assert (SCREENSHOTS / "test-suite-report-artifact.png").stat().st_size > 10_000


PROVIDERS = ["shop", "shop_next", "cache", "lab"]


def _field(page: Any, label: str) -> Any:
    return page.locator(".p-label", has=page.get_by_text(label, exact=True)).first


def _open_choices(page: Any, label: str) -> Any:
    """The options of the select field titled `label`, opened."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    _field(page, label).locator(".p-select-button__control").click()
    options = page.get_by_role("option")
    try:
        options.first.wait_for(timeout=3_000)
    except PlaywrightTimeout:  # the list sometimes opens only on the first key press
        page.keyboard.press("ArrowDown")
        options.first.wait_for()
    return options


def _choose(page: Any, label: str, value: str) -> None:
    from playwright.sync_api import expect

    _open_choices(page, label).filter(has_text=re.compile(f"^{re.escape(value)}$")).first.click()
    expect(_field(page, label).locator(".p-select-button__value")).to_have_text(value, timeout=10_000)


def _fill_and_submit_the_migrate_form(page: Any) -> None:
    """Source and target chosen from their lists, every other field left as it is; Submit (a real migration)."""
    from playwright.sync_api import expect

    assert page.get_by_text("Blue-green: approval timeout (seconds)", exact=False).count() == 1
    assert page.get_by_text("Approval Timeout S", exact=False).count() == 0
    assert page.get_by_text("is type None", exact=False).count() == 0
    assert sorted(_open_choices(page, "Source provider").all_inner_texts()) == sorted(PROVIDERS)
    page.screenshot(path=str(SCREENSHOTS / "migrate-run-form-providers.png"))
    page.keyboard.press("Escape")
    page.get_by_text("Blue-green: wait for approval (Optional)", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "migrate-run-form-strategy-fields.png"))
    _choose(page, "Source provider", "shop_next")
    _choose(page, "Target provider", "shop")
    expect(_field(page, "Dry run (Optional)").get_by_role("switch")).to_have_attribute("aria-checked", "false")
    page.get_by_role("button", name="Submit").click()
    expect(page).not_to_have_url(re.compile(r".*/run$"), timeout=30_000)  # back to the deployment: the run exists


def test_the_migrate_form_offers_the_providers_of_backends_yaml(server: Server, runs: Runs) -> None:
    deployment = _client_call(server.api, lambda c: c.read_deployment_by_name("migrate/migrate"))
    props = deployment.parameter_openapi_schema["properties"]
    assert "params" not in props and sorted(props["source"]["enum"]) == sorted(PROVIDERS)
    assert "Freezes:" in deployment.description and "Undo:" in deployment.description
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); the browser test needs "
                    "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{server.ui}/deployments/deployment/{deployment.id}/run")
            _field(page, "Source provider").wait_for()
            _fill_and_submit_the_migrate_form(page)
            page.goto(f"{server.ui}/deployments/deployment/{deployment.id}")
            page.get_by_text("Description", exact=True).first.click()
            page.get_by_text("Freezes:", exact=True).first.wait_for()  # bold: rendered as markdown
            page.screenshot(path=str(SCREENSHOTS / "migrate-deployment-description.png"))
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "migrate-form-failure.png"))
            raise
        finally:
            browser.close()
    assert (SCREENSHOTS / "migrate-run-form-providers.png").stat().st_size > 10_000

    def finished() -> Any:
        found = _client_call(server.api, lambda c: c.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))))
        mine = [r for r in found if r.parameters.get("source") == "shop_next"]
        return mine[0] if mine and mine[0].state and mine[0].state.is_final() else None

    run = _wait(finished, 180, "the run submitted from the form to finish", step=2)
    assert run.state.is_completed(), run.state.message
    sent = run.parameters
    assert (sent["source"], sent["target"], sent.get("dry_run", False)) == ("shop_next", "shop", False)
    assert sent.get("batch_size") is None and sent.get("strategy") is None  # left empty: not sent, the flow's None
    made = _artifacts(server.api, run.id)  # the run the form started: its report, chart and HTML page
    assert "**Cut over.** `shop` is now the active backend" in made["migrate-shop-next-to-shop"].data
    assert "![time per phase](data:image/svg+xml;base64," in made["migrate-shop-next-to-shop"].data
    assert "Expectations (Great Expectations)" in _linked_file(made["migrate-shop-next-to-shop-html"]).read_text()
