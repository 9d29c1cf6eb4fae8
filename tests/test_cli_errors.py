"""No traceback reaches the terminal of `shiftover`: an unexpected error is one BACKEND_000 line naming the log file
that holds the traceback; a library's traceback (SQLAlchemy's pool losing a PostgreSQL connection) and a dying
thread's go to that file, not to stderr."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from shiftover.control.store import ControlStore
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SHIFTOVER_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "80"}


def test_an_unexpected_error_is_one_line_naming_the_log_file(tmp_path: Path) -> None:
    secret = "Unexp3cted/pw@x"
    cfg = write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                                  "pg": {"kind": "postgresql", "url": f"postgresql://app:{secret}@127.0.0.1:1/x"}})
    db = tmp_path / "control.db"
    ControlStore(f"sqlite:///{db}").ensure_pointer("a")
    with sqlite3.connect(db) as conn:  # damaged by hand: the pointer's time no longer parses
        conn.execute("update pointer set since = 'yesterday-ish'")
    proc = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "status", "--config", str(cfg)],
                          capture_output=True,
                          text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path)
    log_file = tmp_path / "logs" / "shiftover.log"
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("BACKEND_000: unexpected error: ValueError") and str(log_file) in lines[0]
    assert "what to do:" in lines[0] and "Traceback" not in proc.stderr + proc.stdout
    logged = log_file.read_text()
    assert "Traceback (most recent call last)" in logged and "ValueError" in logged and secret not in logged


def test_library_and_thread_tracebacks_go_to_the_log_file(tmp_path: Path, pg_url: str) -> None:
    script = textwrap.dedent(f"""
        import threading
        import sqlalchemy as sa
        from shiftover.cli import logs as cli_logging

        cli_logging.install()
        engine = sa.create_engine({pg_url!r}, pool_size=1)
        killer = sa.create_engine({pg_url!r}, poolclass=sa.pool.NullPool)
        raw = engine.raw_connection()
        cur = raw.cursor()
        cur.execute("select pg_backend_pid()")
        pid = cur.fetchone()[0]
        with killer.connect() as k:
            k.execute(sa.text("select pg_terminate_backend(:p)"), {{"p": pid}})
        raw.close()  # back to the pool, whose reset fails on the dead connection: SQLAlchemy logs a traceback
        t = threading.Thread(target=lambda: 1 / 0, name="doomed")
        t.start(); t.join()
        print("done")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path), cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert "Traceback" not in proc.stderr and "sqlalchemy" not in proc.stderr.lower()
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "thread doomed failed" in lines[0] and "ZeroDivisionError" in lines[0], proc.stderr
    logged = (tmp_path / "logs" / "shiftover.log").read_text()
    assert "sqlalchemy.pool" in logged and "Exception during reset or similar" in logged
    assert logged.count("Traceback (most recent call last)") >= 2 and "ZeroDivisionError" in logged


def test_prefects_temporary_server_note_stays_off_the_terminal(tmp_path: Path) -> None:
    """The CLI's spinner says the API is starting; Prefect's three-line note with a docs link stays off the terminal."""
    script = textwrap.dedent("""
        import logging
        from shiftover.cli import logs as cli_logging

        cli_logging.install()
        logging.getLogger("prefect.server.api.server").setLevel(logging.INFO)
        logging.getLogger("prefect.server.api.server").info(
            "Starting temporary server on http://127.0.0.1:8123\\nSee https://docs.prefect.io/ for more information.")
        logging.getLogger("prefect.flow_runs").warning("a warning a user must see")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "temporary server" not in proc.stderr and "a warning a user must see" in proc.stderr
