"""Private PostgreSQL clusters that a test may stop, kill -9 and restart (initdb as the postgres user: it refuses root).

`pg_pair` gives two clusters per test module; `PgCluster.reset()` brings one back up and empties it, so tests in a
module share the ~1 s initdb. `free_port()` is for any server a test starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

BINDIR = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


class PgCluster:
    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.port = free_port()
        self.log = root / f"{name}.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        subprocess.run(_as_postgres(str(BINDIR / "initdb"), "-D", str(self.dir), "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "--no-sync"), check=True, capture_output=True)
        self.start()

    def start(self) -> None:
        for _attempt in range(20):
            done = subprocess.run(_as_postgres(
                str(BINDIR / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log), "-w", "-t", "20", "-o",
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"),
                capture_output=True, text=True)
            if done.returncode == 0:
                return
            time.sleep(0.25)  # children of a killed postmaster may still hold the shared memory
        raise RuntimeError(f"cluster {self.dir} did not start: {done.stderr}")

    def stop(self) -> None:
        subprocess.run(_as_postgres(str(BINDIR / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop"),
                       capture_output=True)

    def kill9(self) -> None:
        pid = int((self.dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.running():
            time.sleep(0.05)

    def running(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def reset(self) -> None:
        """Up and empty: every table in public dropped (with any Shiftover freeze trigger on it)."""
        if not self.running():
            self.start()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def execute(self, statement: str) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def pg_pair() -> Iterator[tuple[PgCluster, PgCluster]]:
    root = Path(tempfile.mkdtemp(prefix="shiftover-clusters-"))
    shutil.chown(root, "postgres", "postgres") if os.geteuid() == 0 else None
    os.chmod(root, 0o777)
    clusters = (PgCluster(root, "a"), PgCluster(root, "b"))
    try:
        for c in clusters:
            c.init()
        yield clusters
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(root, ignore_errors=True)


def write_config(directory: Path, providers: dict[str, dict], **sections: dict) -> Path:
    """A backends.yaml in `directory` with a SQLite control store there and the given providers and sections."""
    import yaml

    path = directory / "backends.yaml"
    data = {"providers": providers, "control": {"url": f"sqlite:///{directory / 'control.db'}"}, **sections}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
