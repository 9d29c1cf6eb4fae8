"""One run at a time per provider: leases in the control store (with a heartbeat) and PostgreSQL advisory locks.

Two migrations of one pair started at once: one proceeds, the other is refused at once with BACKEND_015 naming the
holder, and the source's freeze holds until the holder ends. A killed holder's lease (an expired heartbeat, or a
process that is gone) is taken over. A freeze is lifted only by its run, or by `shiftover unfreeze --run-id`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from shiftover.adapters.config import load_config
from shiftover.adapters.errors import LeaseHeld
from shiftover.adapters.registry import open_adapter
from shiftover.control.leases import LeaseTable, RunLease, leases_t
from shiftover.control.store import ControlStore
from shiftover.flows.migrate import migrate
from tests.helpers import all_records, assert_same_records, config, write_config
from tests.test_bluegreen import seed_items


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _plant(store: ControlStore, provider: str, *, run_id: str, host: str, pid: int, age_s: float) -> None:
    """A lease row as a holder elsewhere would have left it."""
    LeaseTable(store)
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_s)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(leases_t).values(provider=provider, run_id=run_id, kind="migrate", host=host, pid=pid,
                                                token="planted", acquired=at, heartbeat=at))


def test_lease_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path}/control.db")
    table = LeaseTable(store)
    assert table.acquire("p", run_id="r1", kind="migrate", token="t1", ttl_s=30) is None
    with pytest.raises(LeaseHeld, match=r"BACKEND_015 \[p\]: another run holds 'p': migrate run r1") as info:
        table.acquire("p", run_id="r2", kind="sync", token="t2", ttl_s=30)
    assert info.value.holder_kind == "migrate"
    # The same run id is not enough while the holder lives (two identical commands resolve to the same run).
    with pytest.raises(LeaseHeld):
        table.acquire("p", run_id="r1", kind="migrate", token="t3", ttl_s=30)
    assert table.renew(["p"], "t1") == [] and table.renew(["p"], "t2") == ["p"]

    # A holder on another host whose heartbeat stopped longer ago than the TTL: taken over.
    _plant(store, "q", run_id="old", host="elsewhere", pid=1, age_s=31)
    note = table.acquire("q", run_id="new", kind="migrate", token="t4", ttl_s=30)
    assert note and "took over 'q' from migrate run old" in note and "heartbeat is 31 s old" in note
    assert table.get("q").run_id == "new" and table.renew(["q"], "t4") == []
    # ... but not while its heartbeat is fresh.
    _plant(store, "s", run_id="busy", host="elsewhere", pid=1, age_s=3)
    with pytest.raises(LeaseHeld, match="busy"):
        table.acquire("s", run_id="new", kind="migrate", token="t5", ttl_s=30)
    # A holder on this host whose process is gone (kill -9): taken over at once, TTL or not.
    _plant(store, "k", run_id="killed", host=socket.gethostname(), pid=_dead_pid(), age_s=0)
    note = table.acquire("k", run_id="killed", kind="migrate", token="t6", ttl_s=30)
    assert note and "is gone" in note
    # A failover preempts a sync; a sync does not preempt a failover.
    table.acquire("f", run_id="sync-1", kind="sync", token="t7", ttl_s=30)
    assert "preempts" in table.acquire("f", run_id="failover-1", kind="failover", token="t8", ttl_s=30,
                                       preempt=("sync",))
    with pytest.raises(LeaseHeld):
        table.acquire("f", run_id="sync-2", kind="sync", token="t9", ttl_s=30, preempt=("sync",))


def test_run_lease_heartbeats_releases_and_holds_the_postgres_advisory_lock(tmp_path: Path, pg_url: str) -> None:
    cfg = load_config(write_config(tmp_path, {"pg": {"kind": "postgresql", "url": pg_url, "role": "primary"}},
                                   control={"url": f"sqlite:///{tmp_path}/control.db", "lease_ttl_s": 2,
                                            "heartbeat_s": 0.2}))
    store = ControlStore(cfg.control.url.get_secret_value())
    table = LeaseTable(store)
    with RunLease(cfg, store, ["pg"], run_id="r1", kind="migrate") as lease:
        first = table.get("pg").heartbeat
        time.sleep(3)  # longer than the TTL: only the heartbeat keeps the lease
        assert table.get("pg").heartbeat > first
        with pytest.raises(LeaseHeld):
            RunLease(cfg, store, ["pg"], run_id="r2", kind="sync").__enter__()
        # Another control store would not see the lease row: the engine's advisory lock refuses that run too.
        other = ControlStore(f"sqlite:///{tmp_path}/other.db")
        with pytest.raises(LeaseHeld, match="run lock of 'pg' in its engine"):
            RunLease(cfg, other, ["pg"], run_id="r3", kind="migrate").__enter__()
        assert LeaseTable(other).all() == []  # the refused run let its own row go
        lease.check()
    assert table.all() == []
    with RunLease(cfg, store, ["pg"], run_id="r4", kind="migrate"):  # everything was let go
        pass


def test_a_lease_lost_to_a_takeover_is_noticed(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, {"m": {"kind": "memory", "url": "memory://lease-lost",
                                                    "role": "primary"}},
                                   control={"url": f"sqlite:///{tmp_path}/control.db", "lease_ttl_s": 2,
                                            "heartbeat_s": 1}))
    store = ControlStore(cfg.control.url.get_secret_value())
    with RunLease(cfg, store, ["m"], run_id="slow", kind="sync") as lease:
        with store.engine.begin() as conn:  # as if the holder had stalled past the TTL and another run took over
            conn.execute(sa.update(leases_t).values(token="someone else", run_id="fast"))
        with pytest.raises(LeaseHeld, match="run slow lost its lease on m to migrate run fast|lost its lease on m"):
            lease.check()
    assert LeaseTable(store).get("m").run_id == "fast"  # the loser did not delete the winner's row


def _pg_config(tmp_path: Path, src: str, dst: str) -> Path:
    return write_config(tmp_path, {"src": {"kind": "postgresql", "url": src, "role": "primary"},
                                   "dst": {"kind": "postgresql", "url": dst}})


def test_two_migrations_of_one_pair_at_once_one_proceeds_the_other_is_refused(
        prefect_harness, tmp_path: Path, pg_url: str, pg_url2: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg_path = _pg_config(tmp_path, pg_url, pg_url2)
    seed_items(cfg_path, "src", 3000)
    marker = tmp_path / "paused"
    # The run that proceeds pauses in its copy (after a first chunk) while it holds the freeze.
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_AT", "copy")
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_FILE", str(marker))
    monkeypatch.setenv("SHIFTOVER_TEST_PAUSE_S", "6")
    params = dict(source="src", target="dst", config_path=str(cfg_path), chunk_rows=1000, batch_size=500,
                  workers=1)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        barrier.wait()
        try:
            outcomes[name] = migrate(**params)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while not (marker.exists() and any(isinstance(o, LeaseHeld) for o in outcomes.values())):
        assert time.monotonic() < deadline, f"no pause and refusal: {outcomes}"
        time.sleep(0.05)
    store = ControlStore(config(cfg_path).control.url.get_secret_value())
    [holder] = [r for r in store.runs() if r.status == "running"]
    [refused] = [o for o in outcomes.values() if isinstance(o, LeaseHeld)]
    assert refused.code == "BACKEND_015" and f"migrate run {holder.run_id}" in str(refused)
    # The holder is still copying: the source stays frozen for the app, whatever the refused run did.
    with open_adapter(config(cfg_path), "src") as src:
        assert src.frozen() == ["items"]
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn, \
            pytest.raises(psycopg.Error, match="BACKEND_010"):
        conn.execute("INSERT INTO items (id, name) VALUES (99999, 'written during the copy')")
    assert [f.run_id for f in store.freezes("src")] == [holder.run_id]
    for t in threads:
        t.join(180)
    [report] = [o for o in outcomes.values() if not isinstance(o, BaseException)]
    assert report.status == "switched" and report.run_id == holder.run_id
    assert len(store.runs(limit=10)) == 1  # the refused run started nothing
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        assert src.frozen() == [] and store.freezes("src") == []
        assert assert_same_records(src, dst, "items") == 3000  # copied once, not twice
    assert LeaseTable(store).all() == []


def test_a_killed_holders_lease_is_taken_over_by_the_next_migration(
        prefect_harness, tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = _pg_config(tmp_path, pg_url, pg_url2)
    seed_items(cfg_path, "src", 500)
    store = ControlStore(config(cfg_path).control.url.get_secret_value())
    _plant(store, "src", run_id="crashed", host="another-host", pid=4242, age_s=0)
    params = dict(source="src", target="dst", config_path=str(cfg_path))
    with pytest.raises(LeaseHeld, match="crashed"):  # its heartbeat is fresh: it may still be running
        migrate(**params)
    with store.engine.begin() as conn:  # its heartbeat stops: the holder was killed
        conn.execute(sa.update(leases_t).values(heartbeat=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=40)))
    report = migrate(**params)
    assert report.status == "switched"
    assert any("took over 'src' from migrate run crashed" in n for n in report.notes)
    with open_adapter(config(cfg_path), "dst") as dst:
        assert len(all_records(dst, "items")) == 500
    assert LeaseTable(store).all() == []


def test_a_freeze_is_lifted_only_by_its_run_or_by_naming_it(tmp_path: Path, pg_url: str) -> None:
    from typer.testing import CliRunner

    from shiftover.cli.main import app
    from shiftover.tasks.migration import unfreeze_source

    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"}})
    seed_items(cfg_path, "src", 10)
    store = ControlStore(config(cfg_path).control.url.get_secret_value())
    with open_adapter(config(cfg_path), "src") as src:
        src.freeze(["items"], reason="run A")
    store.set_freeze("src", ["items"], run_id="run-a", reason="run A")
    unfreeze_source.fn(str(cfg_path), "src", ["items"], "run-b")  # another run's unfreeze leaves it alone
    with open_adapter(config(cfg_path), "src") as src:
        assert src.frozen() == ["items"] and [f.run_id for f in store.freezes("src")] == ["run-a"]
    result = CliRunner().invoke(app, ["unfreeze", "src", "--config", str(cfg_path)])
    assert result.exit_code == 1 and isinstance(result.exception, LeaseHeld)
    assert "belongs to run(s) run-a" in str(result.exception) and "--run-id run-a" in str(result.exception)
    result = CliRunner().invoke(app, ["unfreeze", "src", "--run-id", "run-a", "--config", str(cfg_path)])
    assert result.exit_code == 0, result.output
    with open_adapter(config(cfg_path), "src") as src:
        assert src.frozen() == [] and store.freezes("src") == []
