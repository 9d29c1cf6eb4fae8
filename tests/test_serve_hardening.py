"""The read-only HTTP endpoint of `shiftover serve` under hostile clients and a broken control store: a slowloris
burst on 127.0.0.1 leaves the thread count bounded and /active answering; a damaged store answers 503 with a JSON
BACKEND error on /active and /healthz; GETs on an empty store create nothing."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from shiftover.control.store import ControlStore
from shiftover.service.process import Endpoint
from tests.fixtures_clusters import free_port
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"main": {"kind": "sqlite", "url": "sqlite:///main.db", "role": "primary"},
                                   "spare": {"kind": "sqlite", "url": "sqlite:///spare.db", "role": "standby"}})


@pytest.fixture
def endpoint(tmp_path: Path):
    ep = Endpoint(str(_config(tmp_path)), "127.0.0.1", 0, header_timeout_s=2).start()
    try:
        yield f"http://127.0.0.1:{ep.port}", tmp_path / "control.db"
    finally:
        ep.stop()


def _pointer_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from pointer").fetchone()[0]


def test_get_on_an_empty_store_creates_nothing(endpoint) -> None:
    base, db = endpoint
    status, body = _get(f"{base}/active")
    assert status == 404 and body["error"].startswith("BACKEND_001") and not db.exists()  # not even the file
    assert _get(f"{base}/healthz") == (200, {"status": "ok"})

    ControlStore(f"sqlite:///{db}").close()  # tables, no pointer row
    for _ in range(3):
        status, body = _get(f"{base}/active")
        assert status == 404 and "no active backend" in body["error"]
    assert _pointer_rows(db) == 0

    ControlStore(f"sqlite:///{db}").ensure_pointer("main")
    status, body = _get(f"{base}/active")
    assert status == 200 and set(body) == {"provider", "epoch", "since", "reason"}
    assert (body["provider"], body["epoch"]) == ("main", 1) and _pointer_rows(db) == 1


def test_a_damaged_control_store_answers_503_json_on_both(endpoint) -> None:
    base, db = endpoint
    db.write_bytes(os.urandom(16384))
    status, body = _get(f"{base}/active")
    assert status == 503 and body["error"].startswith("BACKEND_006") and "cannot be read" in body["error"]
    status, body = _get(f"{base}/healthz")
    assert status == 503 and body["status"] == "unavailable" and body["error"].startswith("BACKEND_006")

    db.unlink()  # a pointer table that is not Shiftover's: a value that does not parse
    with sqlite3.connect(db) as conn:
        conn.execute("create table pointer (id int, epoch int, provider text, since text, reason text)")
        conn.execute("insert into pointer values (1, 1, 'main', 'not a time', 'by hand')")
    status, body = _get(f"{base}/active")
    assert status == 503 and body["error"].startswith("BACKEND_006"), body
    assert _get(f"{base}/healthz")[0] == 503

    db.unlink()
    ControlStore(f"sqlite:///{db}").ensure_pointer("spare")
    assert _get(f"{base}/active")[1]["provider"] == "spare"  # and it recovers once the store is back
    assert _get(f"{base}/healthz") == (200, {"status": "ok"})


def test_only_get_on_two_paths(endpoint) -> None:
    base, db = endpoint
    assert _get(f"{base}/nothing")[0] == 404
    req = urllib.request.Request(f"{base}/active", method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 405 and not db.exists()


def test_slowloris_burst_leaves_threads_bounded_and_active_answering(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    ControlStore(f"sqlite:///{tmp_path / 'control.db'}").ensure_pointer("main")
    port = free_port()
    script = textwrap.dedent(f"""
        import time
        from shiftover.service.process import Endpoint
        Endpoint({str(cfg)!r}, "127.0.0.1", {port}, header_timeout_s=3).start()
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    sockets: list[socket.socket] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        base = f"http://127.0.0.1:{port}"
        for _ in range(5):
            assert _get(f"{base}/active")[0] == 200
        before = psutil.Process(proc.pid).num_threads()

        for i in range(150):  # idle: connect and send nothing; or send half a request and stall
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 3 == 0:
                s.sendall(b"GET /active HTTP/1.1\r\nHost: x\r\n")
            sockets.append(s)
        time.sleep(0.5)
        started = time.monotonic()
        status, body = _get(f"{base}/active")
        assert status == 200 and body["provider"] == "main" and time.monotonic() - started < 2
        during = psutil.Process(proc.pid).num_threads()
        assert during <= before + 2 and during < 16, (before, during)

        time.sleep(3.5)  # the header deadline closes every stalled connection
        closed = 0
        for s in sockets:
            try:
                closed += s.recv(64) == b""
            except OSError:
                closed += 1
        assert closed == len(sockets)
        assert _get(f"{base}/active")[0] == 200
        assert psutil.Process(proc.pid).num_threads() <= before + 2
    finally:
        for s in sockets:
            s.close()
        proc.kill()
        proc.wait(timeout=10)


def test_the_view_of_a_postgresql_control_store_reads_and_cannot_write(pg_url: str) -> None:
    import sqlalchemy as sa

    from shiftover.control.view import ControlView, NoPointerYet

    view = ControlView(pg_url)
    try:
        with pytest.raises(NoPointerYet):  # no table yet, and the view does not create one
            view.pointer()
        store = ControlStore(pg_url)
        with pytest.raises(NoPointerYet):
            view.pointer()
        store.ensure_pointer("main")
        assert (view.pointer().provider, view.pointer().epoch) == ("main", 1)
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"), view.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM pointer")
        assert store.pointer() is not None
        store.close()
    finally:
        view.close()
