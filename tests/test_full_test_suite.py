"""The full test suite against real providers: the provider × category table it publishes, the files it writes,
what it does with a provider that is down or refuses the password, and `shiftover test-suite`'s exit status.

Artifacts are read back from the session's Prefect API; nothing is taken from the flow's return value alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from shiftover.adapters.base import Filter
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.tasks.testsuite import MATRIX_KEY, REPORT_KEY
from shiftover.tasks.testsuite_categories import scratch_record, scratch_schema
from shiftover.tasks.testsuite_model import CATEGORIES, TestSuiteParams, TestSuiteReport
from shiftover.tasks.testsuite_performance import percentile
from tests.fixtures_clusters import BINDIR, PgCluster, _as_postgres
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

FAST = {"data_size": "small", "concurrent_users": 2, "duration_s": 1.0}
NOT_OFFERED = "skipped: {kind} does not offer {service} (capabilities.{service} is false)"
NOT_RUN = "skipped: not run: the connection test failed"


async def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found if a.key}


async def _logs(flow_run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def run_suite(params: TestSuiteParams) -> tuple[TestSuiteReport, UUID, dict[str, Any]]:
    from shiftover.flows.full_test_suite import full_test_suite

    state = full_test_suite(params, return_state=True)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    report = TestSuiteReport.model_validate_json(Path(state.result().files["json"]).read_text(encoding="utf-8"))
    return report, flow_run_id, asyncio.run(_artifacts(flow_run_id))


def matrix(artifact: Any) -> dict[str, dict[str, str]]:
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["provider"]: {c: row[c] for c in CATEGORIES} for row in rows}


def boolean_filter_works(url: str) -> bool:
    """Whether the PostgreSQL adapter answers a find on a boolean field (the suite must report what it does)."""
    from shiftover.adapters.registry import adapter_class

    cls = adapter_class("postgresql")
    with cls("probe-bool", url, cls.Options()) as pg:
        pg.create_collection(scratch_schema("bool_probe"))
        try:
            pg.find("bool_probe", [Filter("active", "eq", True), Filter("qty", "lt", 4)])
            return True
        except Exception:  # noqa: BLE001 - a BackendError, or a driver error escaping the adapter
            return False
        finally:
            pg.drop_collection("bool_probe")


def test_suite_on_postgres_sqlite_and_memory_publishes_the_expected_table(tmp_path: Path, pg_url: str) -> None:
    cfg_path = write_config(tmp_path, {"mem": {"kind": "memory", "url": "memory://suite"},
                                       "lite": {"kind": "sqlite", "url": "sqlite:///lite.db"},
                                       "pg": {"kind": "postgresql", "url": pg_url}})
    cfg = config(cfg_path)
    user_row = scratch_record(7)
    for name in ("mem", "lite", "pg"):  # the user's own data, which the suite must not touch
        with open_adapter(cfg, name) as a:
            a.create_collection(scratch_schema("customers"))
            a.upsert("customers", [user_row])
    out = tmp_path / "reports"
    report, run_id, artifacts = run_suite(TestSuiteParams(config_path=str(cfg_path), output_dir=str(out), **FAST))

    crud_pg = "passed 9/9" if boolean_filter_works(pg_url) else "failed 8/9"
    expected = {
        p: {"connection": "passed 3/3", "crud": "passed 9/9", "performance": "passed 8/8", "load": "passed 2/2",
            "migration": "passed 3/3", "auth": NOT_OFFERED.format(kind=k, service="auth"),
            "storage": NOT_OFFERED.format(kind=k, service="storage")}
        for p, k in (("mem", "memory"), ("lite", "sqlite"), ("pg", "postgresql"))}
    expected["pg"]["crud"] = crud_pg
    assert set(artifacts) >= {REPORT_KEY, MATRIX_KEY}
    assert matrix(artifacts[MATRIX_KEY]) == expected
    if crud_pg.startswith("failed"):
        failed = [t for t in report.outcome("pg", "crud").tests if t.status == "failed"]
        assert [t.name for t in failed] == ["read with a boolean filter"]

    md = artifacts[REPORT_KEY].data
    assert "| provider | connection | crud | auth | storage | performance | load | migration |" in md
    table = md.split("## Provider × category\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0] == "| provider | connection | crud | auth | storage | performance | load | migration |"
    assert all(len(line) <= 100 for line in table), "the matrix fits the artifact panel"
    assert "| mem | ✓ 3/3 | ✓ 9/9 | – [3] | – [4] | ✓ 8/8 | ✓ 2/2 | ✓ 3/3 |" in table  # lite's reasons are 1 and 2
    assert "\n3. memory does not offer auth (capabilities.auth is false)\n" in md
    images = re.findall(r"!\[latency (\w+)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    assert [p for p, _ in images] == report.providers == ["lite", "mem", "pg"]  # the configuration's order
    svg = base64.b64decode(images[2][1]).decode()
    assert svg.startswith("<svg") and "Latency on pg (ms)" in svg and "batch upsert" in svg
    assert "<svg" not in md, "the UI strips inline SVG: charts must be data-URI images"
    slowest = max(op.p99_ms for p in report.providers for op in report.outcome(p, "performance").operations)
    for _, image in images:  # one latency scale for every provider, and ink that reads on a light or dark theme
        chart = base64.b64decode(image).decode()
        assert chart.endswith(f'>{slowest:.2f} ms</text></svg>')
        ink = re.findall(r'<(?:svg|text) [^>]*?fill="([^"]+)"', chart)
        assert "#222222" in ink and not set(ink) & {"#000", "#000000", "black", "#fff", "#ffffff", "white"}
        assert '<rect x="0.5" y="0.5"' in chart and 'fill="#ffffff" stroke="#8a8a8a"' in chart  # its own panel

    s = report.summary
    assert (s.total, s.passed + s.failed + s.skipped) == (sum(len(o.tests) for o in report.outcomes), s.total)
    assert s.success_rate == round(s.passed / (s.passed + s.failed), 4)
    perf = report.outcome("pg", "performance")
    assert [o.operation for o in perf.operations] == ["insert", "get", "find", "update", "delete", "batch upsert ×100"]
    for op in perf.operations:
        assert 0 < op.p50_ms <= op.p95_ms <= op.p99_ms and op.ops_per_s > 0
    assert perf.memory_rss_mb and perf.memory_rss_mb > 20 and perf.batch_efficiency and perf.batch_efficiency > 0
    load = report.outcome("lite", "load").load
    assert load and load.users == 2 and load.operations > 0 and load.error_rate == 0
    assert any("every category that ran passed" in r for r in report.recommendations)
    assert any("auth is not offered by lite, mem, pg" in w for w in report.warnings)

    html = Path(report.files["html"]).read_text(encoding="utf-8")
    assert Path(report.files["html"]).parent == out.resolve()
    assert html.count("<svg") == 3 and "<script" not in html and not re.search(r"(src|href)=", html)  # self-contained
    assert "<td class='passed'>passed 3/3</td>" in html

    # scratch collections are gone, the user's data is as it was
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert tables == ["customers"]
    with sqlite3.connect(tmp_path / "lite.db") as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]
    assert sorted(MemoryAdapter.store("suite").collections) == ["customers"]
    for name in ("mem", "lite", "pg"):
        with open_adapter(cfg, name) as a:
            assert a.scan("customers") and a.count("customers") == 1
            assert a.get("customers", ("r0000007",))["name"] == user_row["name"]


def test_suite_on_the_firestore_emulator(tmp_path: Path, firestore_emulator: Any) -> None:
    cfg_path = write_config(tmp_path, {
        "fs": {"kind": "firestore", "url": f"firestore://{firestore_emulator.project}",
               "options": {"emulator_host": firestore_emulator.host}},
        "mem": {"kind": "memory", "url": "memory://partner"}})
    report, _, artifacts = run_suite(TestSuiteParams(config_path=str(cfg_path), providers=["fs"],
                                                     migration_partner="mem", output_dir=str(tmp_path), **FAST))
    assert matrix(artifacts[MATRIX_KEY])["fs"] == {
        "connection": "passed 3/3", "crud": "passed 9/9", "performance": "passed 8/8", "load": "passed 2/2",
        "migration": "passed 3/3", "auth": NOT_OFFERED.format(kind="firestore", service="auth"),
        "storage": NOT_OFFERED.format(kind="firestore", service="storage")}
    with open_adapter(config(cfg_path), "fs") as fs:
        assert not [c for c in fs.collections() if c.startswith("_shiftover_ts_")]
    assert report.summary.failed == 0


class ScramCluster(PgCluster):
    """A private cluster that checks passwords (the shared server trusts 127.0.0.1, so any password works there)."""

    password = "right-Pa55word"

    def init(self) -> None:
        pwfile = self.dir.parent / f"{self.dir.name}.pw"
        pwfile.write_text(self.password)
        os.chmod(pwfile, 0o644)
        subprocess.run(_as_postgres(str(BINDIR / "initdb"), "-D", str(self.dir), "-U", "postgres",
                                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True)
        self.start()


@pytest.fixture
def scram_cluster() -> Any:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="shiftover-scram-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o777)
    cluster = ScramCluster(root, "pw")
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


WRONG = "Wr0ng-S3cret-pw"
DOWN = "D0wn-S3cret-pw"


def test_failing_providers_show_failed_tests_not_a_crash_and_no_password(tmp_path: Path, scram_cluster: Any) -> None:
    from tests.fixtures_clusters import free_port

    good = f"postgresql://postgres:{scram_cluster.password}@127.0.0.1:{scram_cluster.port}/postgres"
    cfg_path = write_config(tmp_path, {
        "pg_ok": {"kind": "postgresql", "url": good},
        "pg_badpw": {"kind": "postgresql",
                     "url": f"postgresql://postgres:{WRONG}@127.0.0.1:{scram_cluster.port}/postgres"},
        "pg_down": {"kind": "postgresql", "url": f"postgresql://postgres:{DOWN}@127.0.0.1:{free_port()}/postgres",
                    "options": {"connect_timeout_s": 2}},
        "flaky": {"kind": "memory", "url": "memory://flaky",
                  "options": {"fail_rate": 0.5, "fail_ops": ["find"], "seed": 0}}})
    report, run_id, artifacts = run_suite(TestSuiteParams(
        config_path=str(cfg_path), categories=["connection", "crud", "load", "migration"], output_dir=str(tmp_path),
        **FAST))
    table = matrix(artifacts[MATRIX_KEY])
    assert table["pg_ok"]["connection"] == "passed 3/3" and table["pg_ok"]["load"] == "passed 2/2"
    for name, code in (("pg_badpw", "BACKEND_007"), ("pg_down", "BACKEND_006")):
        assert table[name]["connection"] == "failed 0/1 (1 skipped)"
        assert {table[name][c] for c in ("crud", "load", "migration")} == {NOT_RUN}
        assert report.outcome(name, "connection").tests[0].error.startswith(f"{code} [{name}]")
    # the memory backend whose finds fail half the time: connection passes, CRUD and load fail on the error rate
    assert table["flaky"]["connection"] == "passed 3/3"
    assert table["flaky"]["crud"].startswith("failed") and table["flaky"]["load"] == "failed 1/2"
    assert "above the allowed 1.00%" in report.outcome("flaky", "load").reason
    assert report.summary.failed >= 4
    assert any(e.startswith("pg_badpw / connection / connect and read: BACKEND_007") for e in report.errors)

    texts = {"json": Path(report.files["json"]).read_text(), "html": Path(report.files["html"]).read_text(),
             "markdown": artifacts[REPORT_KEY].data, "table": json.dumps(artifacts[MATRIX_KEY].data),
             "logs": asyncio.run(_logs(run_id))}
    for where, text in texts.items():
        for secret in (WRONG, DOWN, scram_cluster.password):
            assert secret not in text, f"a password appears in the {where}"
    assert "refused the credentials" in texts["markdown"] and "unreachable" in texts["html"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "200"}  # no second server
    return subprocess.run([sys.executable, "-m", "shiftover.cli.main", "test-suite", *args], 
                          capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_exit_status_gates_on_failed_tests(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, {
        "mem": {"kind": "memory", "url": "memory://cli"},
        "down": {"kind": "postgresql", "url": f"postgresql://u:{DOWN}@127.0.0.1:1/db"}})
    ok = _cli("--config", str(cfg_path), "--providers", "mem", "--categories", "connection,crud,auth",
              "--output-dir", str(tmp_path / "ok"), "--json")
    assert ok.returncode == 0, ok.stderr
    report = TestSuiteReport.model_validate_json(ok.stdout)
    assert (report.summary.failed, report.outcome("mem", "crud").status) == (0, "passed")
    assert report.outcome("mem", "auth").status == "skipped"
    assert Path(report.files["html"]).is_file()

    bad = _cli("--config", str(cfg_path), "--categories", "connection,crud", "--output-dir", str(tmp_path / "bad"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "failed down / connection / connect and read: BACKEND_006" in bad.stdout
    assert "Traceback" not in bad.stderr and DOWN not in bad.stdout + bad.stderr

    wrong = _cli("--config", str(cfg_path), "--categories", "connection,teleport")
    assert wrong.returncode == 2 and "Input should be 'connection'" in wrong.stderr


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([3.0], 0.99) == 3.0
