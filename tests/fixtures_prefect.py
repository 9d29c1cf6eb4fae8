"""A real `prefect server start` for the whole session, for tests that check what runs against a running API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures_clusters import free_port
from tests.helpers import stop_group

BIN = Path(sys.executable).parent


def api_answers(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            return json.loads(r.read()) is True
    except OSError:
        return False


@pytest.fixture(scope="session")
def running_prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(API URL, its PREFECT_HOME) of a Prefect server on a free port; stopped at the end of the session."""
    home = tmp_path_factory.mktemp("prefect-api-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": ""}
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while not api_answers(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server start did not answer: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield api, home
    finally:
        stop_group(proc, signal.SIGTERM, 30)
        log.close()
