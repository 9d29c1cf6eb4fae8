"""The auth and storage categories on a provider that offers them: the Supabase adapter, its data plane on the real
local PostgreSQL and Auth/Storage on the local fake of their HTTP APIs (tests/fixtures_supabase.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shiftover.tasks.testsuite import MATRIX_KEY, REPORT_KEY
from shiftover.tasks.testsuite_model import TestSuiteParams
from tests.helpers import write_config
from tests.test_full_test_suite import FAST, matrix, run_suite

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_auth_and_storage_run_where_offered(tmp_path: Path, pg_url: str, supabase_fake: Any) -> None:
    cfg_path = write_config(tmp_path, {"sb": {"kind": "supabase", "url": pg_url, "options": {
        "api_url": supabase_fake.url, "service_role_key": supabase_fake.key}}})
    report, _, artifacts = run_suite(TestSuiteParams(config_path=str(cfg_path), output_dir=str(tmp_path),
                                                     categories=["connection", "auth", "storage"], **FAST))
    row = matrix(artifacts[MATRIX_KEY])["sb"]
    assert row["connection"] == "passed 3/3"
    assert row["auth"] == "passed 5/5 (1 skipped)", report.outcome("sb", "auth").tests
    assert row["storage"] == "passed 5/5", report.outcome("sb", "storage").tests
    skipped = [t for t in report.outcome("sb", "auth").tests if t.status == "skipped"]
    assert [t.name for t in skipped] == ["sign in and sessions"]
    assert supabase_fake.users == {} and not any(supabase_fake.buckets)  # scratch user and bucket removed
    texts = [artifacts[REPORT_KEY].data, json.dumps(artifacts[MATRIX_KEY].data), Path(report.files["json"]).read_text(),
             Path(report.files["html"]).read_text()]
    assert not any(supabase_fake.key in t for t in texts)
