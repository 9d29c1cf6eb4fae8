"""What the `shiftover` reports look like in an 80-column terminal: no provider or collection name cut or split
across lines, booleans as words (and real JSON booleans with --json), verdicts coloured, and Prefect's log lines
printed above the progress bar instead of into it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import sqlalchemy as sa

from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")
PRIMARY, STANDBY = "local_sqlite_primary_store", "postgres_standby_replica_eu"
LONG = "customer_loyalty_transactions_archive"
COLLECTIONS = ("customers", "orders", "order_items", LONG)


def _env(columns: int, **extra: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TERM")}
    return {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": str(columns), **extra}


def _run(*args: str, columns: int = 80, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftover.cli.main", *args], capture_output=True, text=True,
                          env=_env(columns, **env), timeout=300)


@pytest.fixture
def two_providers(tmp_path: Path, pg_url: str) -> Path:
    path = write_config(tmp_path, {PRIMARY: {"kind": "sqlite", "url": f"sqlite:///{tmp_path}/a.db", "role": "primary"},
                                   STANDBY: {"kind": "postgresql", "url": pg_url, "role": "standby"}})
    with open_adapter(config(path), PRIMARY) as src:
        seed(src, 120)
        with src.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {LONG} (id INTEGER PRIMARY KEY, points_after_adjustment INTEGER)"))
            conn.execute(sa.text(f"INSERT INTO {LONG} VALUES (1, 10), (2, 20)"))
    return path


def _whole(stdout: str, wide: str, names: tuple[str, ...]) -> None:
    """Each name appears as often at 80 columns as at 200 (none cut or split), nothing is elided, and only a line
    holding a file path (printed whole for copying) is wider than 80."""
    assert "…" not in stdout, stdout
    for name in names:
        assert stdout.count(name) == wide.count(name) >= 1, (name, stdout)
    long = [line for line in stdout.splitlines() if len(line) > 80 and "/" not in line]
    assert not long, stdout


def test_reports_at_80_columns_keep_every_name_whole(two_providers: Path) -> None:
    cfg = str(two_providers)
    commands = {"migrate": ["migrate", PRIMARY, STANDBY, "--dry-run", "--config", cfg, "--report-dir",
                            str(two_providers.parent / "plan")],
                "status": ["status", "--config", cfg], "health": ["health", "--config", cfg, "--no-canary"],
                "test-suite": ["test-suite", "--categories", "connection,crud", "--config", cfg, "--output-dir",
                               str(two_providers.parent / "suite")]}
    for name, args in commands.items():
        narrow, wide = _run(*args), _run(*args, columns=200)
        assert narrow.returncode == 0 and wide.returncode == 0, (name, narrow.stderr, wide.stderr)
        names = (PRIMARY, STANDBY) + (COLLECTIONS if name == "migrate" else ())
        _whole(narrow.stdout, wide.stdout, names)
        assert "True" not in narrow.stdout and "False" not in narrow.stdout, narrow.stdout
        if name == "migrate":
            assert "Dry run. Nothing was changed." in narrow.stdout and "– not measured" in narrow.stdout
        if name in ("status", "health"):  # the active flag as a word, in the one-block-per-provider layout
            assert re.search(r"^\s+active\s+yes\s*$", narrow.stdout, re.M) and re.search(
                r"^\s+active\s+no\s*$", narrow.stdout, re.M), narrow.stdout
        if name == "test-suite":
            assert "passed 3/3" in narrow.stdout and "24 passed, 0 failed, 0 skipped" in narrow.stdout


def test_json_carries_real_booleans(two_providers: Path) -> None:
    cfg = str(two_providers)
    health = json.loads(_run("health", "--config", cfg, "--no-canary", "--json").stdout)
    assert {h["provider"]: h["active"] for h in health} == {PRIMARY: True, STANDBY: False}
    status = json.loads(_run("status", "--config", cfg, "--json").stdout)
    assert {p["name"]: p["active"] for p in status["providers"]} == {PRIMARY: True, STANDBY: False}
    plan = json.loads(_run("migrate", PRIMARY, STANDBY, "--dry-run", "--json", "--config", cfg).stdout)
    assert plan["dry_run"] is True and sorted(c["name"] for c in plan["collections"]) == sorted(COLLECTIONS)
    fail = _run("failover", "--dry-run", "--json", "--force", "--config", cfg)
    assert fail.returncode == 0, fail.stderr
    candidate = json.loads(fail.stdout)["candidates"][0]
    assert candidate["provider"] == STANDBY and candidate["healthy"] is True and candidate["in_sync"] is False
    words = _run("failover", "--dry-run", "--force", "--config", cfg)
    assert re.search(r"^\s+healthy\s+yes\s*$", words.stdout, re.M) and re.search(
        r"^\s+in sync\s+no\s*$", words.stdout, re.M), words.stdout


def test_verdicts_are_coloured(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"up": {"kind": "sqlite", "url": f"sqlite:///{tmp_path}/up.db", "role": "primary"},
                                  "gone": {"kind": "postgresql", "url": "postgresql://app@127.0.0.1:1/none"}})
    done = _run("health", "--config", str(cfg), "--no-canary", columns=200, FORCE_COLOR="1")
    assert done.returncode == 1, done.stderr  # a provider is down
    assert re.search(r"\x1b\[32mhealthy *\x1b\[0m", done.stdout), done.stdout
    assert re.search(r"\x1b\[31mdown *\x1b\[0m", done.stdout), done.stdout
    assert not re.search(r"\x1b\[3\dmyes", done.stdout)  # "active" is a fact, not a verdict: words, no colour
    plain = _run("health", "--config", str(cfg), "--no-canary")
    assert "\x1b[" not in plain.stdout  # not a terminal: no escape codes


def _in_a_terminal(argv: list[str], env: dict[str, str], columns: int = 80) -> str:
    """Run argv with stdout and stderr on a pseudo-terminal `columns` wide; everything it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def screen(raw: str, width: int = 80) -> list[str]:
    """The lines a terminal shows after `raw` (carriage return, newline, erase line, cursor up; colours ignored)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for m in re.finditer(r"\x1b\[([0-9;?]*)([A-Za-z])|(.)", raw, re.S):
        if m.group(2):
            arg, cmd = m.group(1), m.group(2)
            if cmd == "K":
                lines[row] = [] if arg == "2" else lines[row][:col]
            elif cmd == "A":
                row = max(0, row - int(arg or 1))
            continue
        ch = m.group(3)
        if ch == "\r":
            col = 0
            continue
        if ch == "\n" or col >= width:
            row, col = row + 1, 0
            if row == len(lines):
                lines.append([])
            if ch == "\n":
                continue
        line = lines[row]
        line.extend(" " * (col + 1 - len(line)))
        line[col] = ch
        col += 1
    return ["".join(line).rstrip() for line in lines]


def test_log_lines_print_above_the_progress_bar(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"a": {"kind": "sqlite", "url": f"sqlite:///{tmp_path}/a.db", "role": "primary"},
                                   "b": {"kind": "sqlite", "url": f"sqlite:///{tmp_path}/b.db"}},
                        migration={"chunk_rows": 300, "batch_size": 100})
    with open_adapter(config(path), "a") as src:
        seed(src, 3000)
    raw = _in_a_terminal([sys.executable, "-m", "shiftover.cli.main", "migrate", "a", "b", "--config", str(path),
                          "--report-dir", str(tmp_path / "reports")],
                         _env(80, TERM="xterm-256color", PREFECT_LOGGING_LEVEL="INFO"))
    shown = screen(raw)
    assert any(line.startswith("Cut over. b is now the active backend") for line in shown), "\n".join(shown)
    bars = [line for line in shown if line.startswith("copying")]
    assert len(bars) == 1 and "3000/3000 rows" in bars[0], "\n".join(shown)  # redrawn in place, left complete
    logged = [line for line in shown if "| INFO    |" in line]
    assert any("Task run 'copy_chunk" in line for line in logged), "\n".join(shown)
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} \| INFO", line) for line in logged), "\n".join(shown)
    assert shown.index(bars[0]) > max(i for i, line in enumerate(shown) if "Task run 'copy_chunk" in line)
    assert "Validating the target" in raw and "Traceback" not in raw and "Logging error" not in raw


def test_analyze_prints_its_json_report_with_a_dash(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text('from supabase import create_client\nsb = create_client("u", "k")\n'
                                 'sb.table("customer_loyalty_transactions").select("*").execute()\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "analyze", str(app), "--json", "-",
                           "--no-prefect"],
                          capture_output=True, text=True, env=_env(80), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files_scanned"] == 1 and report["plan"]["steps"][0]["collection"] == "customer_loyalty_transactions"
    assert not (tmp_path / "-").exists() and not (tmp_path / "shiftover-analysis.json").exists()
    table = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "analyze", str(app), "--no-prefect"],
                           capture_output=True, text=True, env=_env(80), timeout=120, cwd=tmp_path)
    assert "customer_loyalty_transactions" in table.stdout and "…" not in table.stdout, table.stdout


def test_a_table_too_wide_for_its_names_becomes_one_block_per_row() -> None:
    from rich.console import Console

    from shiftover.cli.tables import Col, show

    names = ("eu_west_primary_postgres_cluster_a", "us_east_standby_firestore_project_b")
    rows = [(n, i == 0, "postgresql", "healthy" if i == 0 else "degraded", "no answer within 5 s")
            for i, n in enumerate(names)]
    cols = (Col("provider", "name"), Col("active"), Col("kind"), Col("status", coloured=True), Col("error", "text"))
    for width, table in ((80, False), (120, True)):
        console = Console(width=width, record=True, force_terminal=True, color_system="standard")
        show(console, "Health", cols, rows)
        text = console.export_text(clear=False)
        assert "…" not in text and all(len(line) <= width for line in text.splitlines()), text
        assert all(sum(n in line for line in text.splitlines()) == 1 for n in names), text
        assert ("┃ provider" in text) is table, text
        assert ("yes" in text and "no" in text) and "True" not in text and "False" not in text
        coloured = console.export_text(styles=True)
        assert "\x1b[32mhealthy" in coloured and "\x1b[33mdegraded" in coloured, coloured
