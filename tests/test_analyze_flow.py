"""The `analyze_codebase` flow (artifact and JSON file, read back) and the `shiftover analyze` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shiftover.codebase.model import Analysis
from shiftover.flows.analyze_codebase import ARTIFACT_KEY, AnalyzeParams

CORPUS = Path(__file__).parent / "corpus" / "analyze"
ROOT = Path(__file__).resolve().parent.parent


async def _latest_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                                sort=ArtifactSort.CREATED_DESC, limit=1)
    assert artifacts, f"no artifact with key {key}"
    return artifacts[0].data


def test_flow_writes_the_json_report_and_the_markdown_artifact(prefect_harness: None, tmp_path: Path) -> None:
    from shiftover.flows.analyze_codebase import analyze_codebase

    output = tmp_path / "out" / "analysis.json"
    analysis = analyze_codebase(AnalyzeParams(path=str(CORPUS), output=str(output), batch_size=4))
    written = Analysis.model_validate_json(output.read_text())
    assert written.plan.total_calls == analysis.plan.total_calls >= 121
    sources = [p for p in CORPUS.rglob("*") if p.suffix in (".ts", ".tsx", ".js", ".py")]
    assert written.files_scanned == len(sources) == 14
    assert written.plan.direct_calls + written.plan.flagged_calls == written.plan.total_calls
    assert [s.order for s in written.plan.steps] == list(range(1, len(written.plan.steps) + 1))
    risks = [s.risk for s in written.plan.steps]
    assert risks == sorted(risks), "steps must go from least to most risky"

    markdown = asyncio.run(_latest_markdown(ARTIFACT_KEY))
    assert f"**{analysis.plan.total_calls} direct provider-SDK calls**" in markdown
    assert "min per direct-mapping call" in markdown
    todos = next(s for s in analysis.plan.steps if s.service == "database" and s.collection == "todos")
    assert f"| {todos.order} | database | todos | {todos.calls} |" in markdown
    assert "| realtime |" in markdown and "| field_value |" in markdown
    assert "server/reports_sql.py:" in markdown  # a raw-SQL call listed among those needing a person


def test_flow_rejects_a_missing_path(prefect_harness: None, tmp_path: Path) -> None:
    from shiftover.adapters.errors import InvalidRequest
    from shiftover.flows.analyze_codebase import analyze_codebase

    with pytest.raises(InvalidRequest, match="does not exist"):
        analyze_codebase.fn(AnalyzeParams(path=str(tmp_path / "missing"), output=str(tmp_path / "a.json")))


def test_cli_analyze_without_prefect(tmp_path: Path) -> None:
    from shiftover.cli.main import app

    output = tmp_path / "a.json"
    result = CliRunner().invoke(app, ["analyze", str(CORPUS), "--json", str(output), "--no-prefect",
                                      "--exclude", "decoys"])
    assert result.exit_code == 0, result.output
    assert "need a person" in result.output and "Plan (least risky first)" in result.output
    report = json.loads(output.read_text())
    assert report["plan"]["total_calls"] >= 121
    assert not any(f["file"].startswith("decoys/") for f in report["findings"])


def test_cli_analyze_missing_path_fails_with_the_error(tmp_path: Path) -> None:
    from shiftover.adapters.errors import InvalidRequest
    from shiftover.cli.main import app

    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "nope"), "--no-prefect"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidRequest)


def test_importing_the_cli_command_does_not_import_prefect() -> None:
    code = "import sys, shiftover.cli.main, shiftover.cli.analyze; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
