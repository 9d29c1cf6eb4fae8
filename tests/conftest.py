"""Shared fixtures. Expensive things (the Prefect harness, servers, emulators) live once per session.

PostgreSQL is real: the server at SHIFTOVER_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres); each test
that asks for `pg_url` gets a fresh database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("SHIFTOVER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect" / "test"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect creates only the last level
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("SHIFTOVER_LOG_DIR", str(ROOT / ".prefect" / "test" / "logs"))  # the CLI's log file, not ~

pytest_plugins: list[str] = ["tests.fixtures_docstores", "tests.fixtures_clusters", "tests.fixtures_supabase",
                           "tests.fixtures_firebase_storage", "tests.fixtures_prefect"]


def _pg_url(db: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{db}".replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not reachable at {PG_ADMIN}: {exc}")
    return PG_ADMIN


def make_database(prefix: str = "shiftover_t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (SQLAlchemy URL form)."""
    name = make_database()
    try:
        yield _pg_url(name)
    finally:
        drop_database(name)


@pytest.fixture
def pg_url2(pg_server: str) -> Iterator[str]:
    """A second fresh database, for PostgreSQL → PostgreSQL tests."""
    name = make_database()
    try:
        yield _pg_url(name)
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One embedded Prefect API for the whole session (a fresh SQLite database)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _fresh_memory_stores() -> Iterator[None]:
    from shiftover.adapters.memory import MemoryAdapter

    MemoryAdapter.reset()
    yield
    MemoryAdapter.reset()
