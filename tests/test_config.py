from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shiftover.adapters.config import load_config
from shiftover.adapters.errors import ConfigInvalid
from shiftover.cli.main import app


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "backends.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_file_from_the_issue_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, """
providers:
  src: {kind: postgresql, url: "postgresql+psycopg://postgres@127.0.0.1:5432/app"}
  dst: {kind: sqlite, url: "sqlite:///data/app.db"}
control: {url: "sqlite:///data/control.db"}
"""))
    assert set(cfg.providers) == {"src", "dst"}
    assert cfg.providers["dst"].url.get_secret_value() == f"sqlite:///{tmp_path / 'data' / 'app.db'}"
    assert cfg.control.url.get_secret_value() == f"sqlite:///{tmp_path / 'data' / 'control.db'}"
    assert cfg.primary() == "src"  # equal priorities: the first in the file


@pytest.mark.parametrize(("text", "path_in_message"), [
    ("providers:\n  a: {kind: postgres, url: x}\n", "providers.a.kind"),
    ("providers:\n  a: {kind: sqlite, url: 'sqlite:///a.db', priorty: 3}\n", "providers.a.priorty"),
    ("providers:\n  a: {kind: sqlite, url: 'sqlite:///a.db'}\nfailover: {consecutive_failures: 0}\n",
     "failover.consecutive_failures"),
    ("providers:\n  a: {kind: sqlite, url: 'sqlite:///a.db'}\nhealth: {error_rate: 3}\n", "health.error_rate"),
    ("providers:\n  a: {kind: sqlite, url: 'sqlite:///a.db'}\nhealth: {history_days: 0.001}\n", "health"),
    ("providers:\n  a: {kind: memory, options: {fail_rate: 2}}\n", "providers.a.options.fail_rate"),
    ("control: {url: 'sqlite:///c.db'}\n", "providers"),
    ("providers:\n  a: {kind: sqlite\n", "line"),
])
def test_invalid_file_names_the_field_path(tmp_path: Path, text: str, path_in_message: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(_write(tmp_path, text))
    assert info.value.code == "BACKEND_002"
    assert path_in_message in str(info.value)
    assert info.value.hint


def test_environment_variables_are_substituted_and_kept_secret(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHIFTOVER_TEST_PW", "Sup3r-Secret")
    cfg = load_config(_write(tmp_path, """
providers:
  pg: {kind: postgresql, url: "postgresql+psycopg://app:${SHIFTOVER_TEST_PW}@db:5432/x", role: primary}
  lite: {kind: sqlite, url: "sqlite:///${SHIFTOVER_TEST_DIR:-sub}/a.db"}
"""))
    assert cfg.providers["pg"].url.get_secret_value() == "postgresql+psycopg://app:Sup3r-Secret@db:5432/x"
    assert "Sup3r-Secret" not in repr(cfg) and "Sup3r-Secret" not in str(cfg.model_dump())
    assert cfg.providers["pg"].display_url() == "postgresql+psycopg://app:***@db:5432/x"
    assert cfg.providers["lite"].url.get_secret_value().endswith("/sub/a.db")


def test_missing_environment_variable_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SHIFTOVER_NOPE", raising=False)
    with pytest.raises(ConfigInvalid, match=r"providers\.pg\.url: environment variable SHIFTOVER_NOPE is not set"):
        load_config(_write(tmp_path, "providers:\n  pg: {kind: postgresql, url: 'postgresql://u:${SHIFTOVER_NOPE}@h/d'}\n"))


def test_two_primaries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="only one provider may have role: primary"):
        load_config(_write(tmp_path, "providers:\n  a: {kind: memory, role: primary}\n"
                                     "  b: {kind: memory, role: primary}\n"))


@pytest.mark.parametrize("template", ["development", "production", "high-availability"])
def test_init_writes_templates_that_load(tmp_path: Path, monkeypatch, template: str) -> None:
    for var in ("SUPABASE_DB_PASSWORD", "SUPABASE_PROJECT_REF", "SUPABASE_SERVICE_ROLE_KEY", "FIREBASE_PROJECT_ID",
                "GOOGLE_APPLICATION_CREDENTIALS", "SHIFTOVER_CONTROL_PASSWORD", "PRIMARY_DB_PASSWORD",
                "REPLICA_DB_PASSWORD"):
        monkeypatch.setenv(var, "x-" + var.lower())
    target = tmp_path / f"{template}.yaml"
    result = CliRunner().invoke(app, ["init", "--template", template, "--path", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "#" in text  # commented
    cfg = load_config(target)
    assert cfg.primary() in cfg.providers
    again = CliRunner().invoke(app, ["init", "--template", template, "--path", str(target)])
    assert again.exit_code != 0 and "--force" in again.output


def test_cli_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = _write(tmp_path, "providers:\n  a: {kind: sqlite, url: 'sqlite:///a.db', role: boss}\n")
    proc = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "status", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "BACKEND_002" in proc.stderr and "providers.a.role" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_changed_file_or_variable_is_read_again_and_callers_get_their_own_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "providers:\n  a: {kind: memory, role: primary}\n"
                            "  b: {kind: postgresql, url: 'postgresql+psycopg://u:${PW_T:-one}@h/db'}\n")
    first = load_config(path)
    assert first.providers["b"].url.get_secret_value().endswith("u:one@h/db")
    first.providers["a"].priority = 7  # a caller's change stays with that caller
    assert load_config(path).providers["a"].priority != 7
    monkeypatch.setenv("PW_T", "two")
    assert load_config(path).providers["b"].url.get_secret_value().endswith("u:two@h/db")
    path.write_text(path.read_text(encoding="utf-8").replace("a: {kind: memory, role: primary}",
                                                             "a: {kind: memory, role: primary, priority: 3}"),
                    encoding="utf-8")
    assert load_config(path).providers["a"].priority == 3
