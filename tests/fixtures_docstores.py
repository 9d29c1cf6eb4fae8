"""Document-store fixtures: Google's Firestore emulator (one per session, emptied before each test) and MongoDB
(mongomock, or the real server at MONGODB_URL, with a fresh database per test)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import mongomock_double  # registers mongomock:// with the MongoDB adapter

FIRESTORE_PROJECT = "shiftover-test"


def firestore_launcher() -> str | None:
    """The emulator's own launcher from the google-cloud-cli-firestore-emulator package (starts in ~1-2 s)."""
    if shutil.which("dpkg") is None:
        return None
    out = subprocess.run(["dpkg", "-L", "google-cloud-cli-firestore-emulator"], capture_output=True, text=True)
    found = [line for line in out.stdout.splitlines() if line.endswith("/cloud_firestore_emulator")]
    return found[0] if found and Path(found[0]).is_file() and shutil.which("java") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    """The server is up: it answered, with anything but a server error."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def emulator_process(args: list[str], *, name: str, ready_url: str, log_path: Path, timeout: float,
                     cwd: Path | None = None, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Start an emulator in a process group of its own, wait until `ready_url` answers, stop the whole group after."""
    log = log_path.open("wb")
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(ready_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the {name} did not start at {ready_url}; see {log_path}")
            time.sleep(0.2)
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@dataclass(frozen=True)
class FirestoreEmulator:
    host: str  # "127.0.0.1:PORT"
    project: str

    def reset(self) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30) as resp:
            assert resp.status == 200


@pytest.fixture(scope="session")
def firestore_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    launcher = firestore_launcher()
    if launcher is None:
        pytest.skip("the Firestore emulator is not installed (apt-get install google-cloud-cli-firestore-emulator "
                    "and a Java runtime)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("firestore") / "emulator.log"
    with emulator_process([launcher, "start", "--host=127.0.0.1", f"--port={port}"], name="Firestore emulator",
                          ready_url=f"http://127.0.0.1:{port}/", log_path=log_path, timeout=60):
        previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
        try:
            yield FirestoreEmulator(f"127.0.0.1:{port}", FIRESTORE_PROJECT)
        finally:
            if previous is None:
                os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture
def firestore_emulator(firestore_server: FirestoreEmulator) -> FirestoreEmulator:
    """The session's emulator, emptied for this test."""
    firestore_server.reset()
    return firestore_server


@dataclass(frozen=True)
class MongoTarget:
    url: str
    database: str
    real: bool


@pytest.fixture
def mongo_target() -> Iterator[MongoTarget]:
    """mongomock with a store of its own, or (MONGODB_URL set) a fresh database on that server, dropped afterwards."""
    database = f"shiftover_t_{uuid.uuid4().hex[:10]}"
    real_url = os.environ.get("MONGODB_URL")
    if not real_url:
        store = f"test-{database}"
        yield MongoTarget(f"mongomock://{store}/{database}", database, False)
        mongomock_double.drop_store(store)
        return
    import pymongo

    yield MongoTarget(real_url, database, True)
    with pymongo.MongoClient(real_url, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(database)
