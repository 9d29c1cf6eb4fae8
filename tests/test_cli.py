"""The `shiftover` command as a user runs it: a separate process, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "200"}  # no second server
    return subprocess.run([sys.executable, "-m", "shiftover.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _setup(tmp_path: Path, rows: int = 900) -> Path:
    cfg_path = write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                                       "b": {"kind": "sqlite", "url": "sqlite:///b.db"}},
                            migration={"chunk_rows": 200, "batch_size": 100})
    with open_adapter(config(cfg_path), "a") as src:
        seed(src, rows)
    return cfg_path


def test_migrate_exits_zero_on_cutover_and_status_shows_it(tmp_path: Path) -> None:
    cfg_path = _setup(tmp_path)
    dry = _run("migrate", "a", "b", "--dry-run", "--config", str(cfg_path), "--report-dir", str(tmp_path / "plan"))
    assert dry.returncode == 0, dry.stderr
    assert "Dry run" in dry.stdout and "will be created" in dry.stdout
    done = _run("migrate", "a", "b", "--strategy", "immediate", "--collections", "orders,customers",
                "--config", str(cfg_path), "--report-dir", str(tmp_path / "reports"))
    assert done.returncode == 0, done.stderr
    assert "Active backend: b (epoch 2" in done.stdout
    pages = list((tmp_path / "reports").glob("migrate-a-to-b-*.html"))
    assert len(pages) == 1 and f"The whole report, with the time-per-phase chart: {pages[0]}" in done.stdout
    assert "data:image" not in done.stdout and "✓ equal" in done.stdout  # the terminal gets the table, not the SVG
    status = _run("status", "--config", str(cfg_path), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["active"], data["epoch"]) == ("b", 2)
    assert data["runs"][0]["status"] == "succeeded" and data["freezes"] == []
    with open_adapter(config(cfg_path), "b") as dst:
        assert sorted(dst.collections()) == ["customers", "orders"]
        assert dst.count("orders") == 300


def test_blocked_cutover_exits_non_zero_with_the_code_and_no_traceback(tmp_path: Path) -> None:
    cfg_path = _setup(tmp_path)
    cfg = config(cfg_path)
    with open_adapter(cfg, "a") as src, open_adapter(cfg, "b") as dst:
        dst.create_collection(src.schema("customers"))
        with dst.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TRIGGER drop_one AFTER INSERT ON customers WHEN NEW.id = 42 "
                                 "BEGIN DELETE FROM customers WHERE id = 42; END")
    proc = _run("migrate", "a", "b", "--collections", "customers", "--config", str(cfg_path))
    assert proc.returncode == 1
    assert "BACKEND_003" in proc.stderr
    assert "customers (start .. end]" in proc.stderr  # 150 customers: one chunk of up to 200 rows
    assert "Traceback" not in proc.stderr
    status = json.loads(_run("status", "--config", str(cfg_path), "--json").stdout)
    assert (status["active"], status["epoch"]) == ("a", 1)


def test_unknown_provider_is_backend_001(tmp_path: Path) -> None:
    cfg_path = _setup(tmp_path, rows=60)
    proc = _run("migrate", "a", "nowhere", "--config", str(cfg_path))
    assert proc.returncode == 1
    assert "BACKEND_001" in proc.stderr and "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_the_strategy_defaults_to_backends_yaml_and_the_flag_overrides_it(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                                       "b": {"kind": "sqlite", "url": "sqlite:///b.db"}},
                            migration={"strategy": "gradual", "chunk_rows": 200})
    with open_adapter(config(cfg_path), "a") as src:
        seed(src, 300)
    planned = _run("migrate", "a", "b", "--dry-run", "--json", "--config", str(cfg_path))
    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    assert report["strategy"] == "gradual"
    assert any("chunk(s) per run" in n for n in report["notes"])
    flagged = _run("migrate", "a", "b", "--dry-run", "--json", "--strategy", "immediate", "--config", str(cfg_path))
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["strategy"] == "immediate"
    cfg_path.write_text(cfg_path.read_text().replace("strategy: gradual", "strategy: sideways"), encoding="utf-8")
    bad = _run("migrate", "a", "b", "--dry-run", "--config", str(cfg_path))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr + bad.stdout
    assert "BACKEND_" in bad.stderr + bad.stdout and "migration.strategy" in bad.stderr + bad.stdout


def test_a_provider_name_typo_is_one_line_before_any_flow_starts(tmp_path: Path) -> None:
    cfg_path = _setup(tmp_path, rows=10)
    for args in (["migrate", "a", "bb", "--dry-run"], ["sync", "--to", "bb"], ["failover", "--to", "bb", "--dry-run"],
                 ["release", "bb"]):
        done = _run(*args, "--config", str(cfg_path))
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert output.count("BACKEND_001") == 1 and output.count("configured providers: a, b") == 1, output
        assert "Traceback" not in output and "Flow run" not in output and "flow run" not in output, output


def test_a_dry_run_from_a_source_with_nothing_in_it_says_so(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                                       "b": {"kind": "sqlite", "url": "sqlite:///b.db"}})
    planned = _run("migrate", "a", "b", "--dry-run", "--json", "--config", str(cfg_path))
    assert planned.returncode == 0, planned.stderr
    notes = json.loads(planned.stdout)["notes"]
    assert any(n.startswith("warning: 'a' has no collections") for n in notes), notes


def test_shell_completion_offers_commands_and_strategies() -> None:
    shiftover = Path(sys.executable).with_name("shiftover")

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_SHIFTOVER_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        done = subprocess.run([str(shiftover)], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("shiftover mig") == ["migrate"]
    assert complete("shiftover migrate a b --strategy ") == ["immediate", "gradual", "blue_green"]
    script = subprocess.run([str(shiftover), "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SHELL": "/bin/bash"})
    assert script.returncode == 0 and "_shiftover_completion" in script.stdout


def test_help_fits_80_columns_without_cutting_anything() -> None:
    from shiftover.cli.main import app

    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    for command in ([], ["migrate"], ["status"], ["health"], ["test-suite"], ["failover"], ["analyze"]):
        done = subprocess.run([sys.executable, "-m", "shiftover.cli.main", *command, "--help"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
        cut = [line for line in lines if line.rstrip().endswith(("…", "...")) and not line.startswith("Usage:")]
        assert not cut, done.stdout
    names = [c.name for c in app.registered_commands]
    assert len(names) == 13
