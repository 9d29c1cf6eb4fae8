from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from shiftover.adapters.base import KeyRange, ProbeResult
from shiftover.adapters.config import HealthPolicy
from shiftover.adapters.errors import PointerConflict
from shiftover.control.store import ControlStore


def test_pointer_moves_only_by_compare_and_swap(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path}/c.db")
    first = store.ensure_pointer("a")
    assert (first.epoch, first.provider) == (1, "a")
    assert store.ensure_pointer("b").provider == "a"  # an existing pointer is never overwritten
    moved = store.switch(expected_epoch=1, provider="b", reason="test")
    assert (moved.epoch, moved.provider) == (2, "b")
    with pytest.raises(PointerConflict) as info:
        store.switch(expected_epoch=1, provider="c", reason="stale")
    assert info.value.code == "BACKEND_012"
    assert store.pointer().provider == "b"
    assert [p.epoch for p in store.history()] == [2, 1]


def test_racing_switches_produce_exactly_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    ControlStore(url).ensure_pointer("primary")
    wins, losses = [], []
    barrier = threading.Barrier(6)

    def contender(i: int) -> None:
        store = ControlStore(url)
        barrier.wait()
        try:
            wins.append(store.switch(expected_epoch=1, provider=f"standby{i}", reason="race"))
        except PointerConflict:
            losses.append(i)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 5
    final = ControlStore(url).pointer()
    assert (final.epoch, final.provider) == (2, wins[0].provider)


def test_chunks_and_freezes_survive_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    store = ControlStore(url)
    store.start_run("r1", kind="migrate", source="a", target="b", strategy="immediate", fingerprint="fp")
    ranges = [KeyRange(None, (10,)), KeyRange((10,), ("k",)), KeyRange(("k",), None)]
    store.save_chunks("r1", "t", ranges)
    store.chunk_done("r1", "t", 1, 42)
    store.set_freeze("a", ["t"], run_id="r1", reason="cutover")
    again = ControlStore(url)
    chunks = again.chunks("r1", "t")
    assert [c.range for c in chunks] == ranges
    assert [c.done for c in chunks] == [False, True, False]
    assert again.rows_done("r1") == 42
    assert again.open_run("fp") == "r1"
    assert [(f.provider, f.collection) for f in again.freezes()] == [("a", "t")]
    assert again.save_chunks("r1", "t", [KeyRange(None, None)]) == chunks  # a resumed run keeps its plan


def test_probe_history_is_bounded_by_history_days(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path}/control.db")
    now = dt.datetime.now(dt.timezone.utc)
    for days in (45, 31, 29, 1):
        store.record_probe(ProbeResult("pg", True, 5.0, at=now - dt.timedelta(days=days)))
    store.record_probe(ProbeResult("other", False, 5.0, "down", at=now - dt.timedelta(days=60)))
    assert len(store.probes("pg")) == 4  # nothing is pruned without a retention
    store.record_probe(ProbeResult("pg", True, 5.0, at=now), kept=HealthPolicy().kept())
    assert sorted(round((now - p.at).total_seconds() / 86_400) for p in store.probes("pg")) == [0, 1, 29]
    assert [p.error for p in store.probes("other")] == ["down"]  # another provider's history is its own
    assert HealthPolicy(history_days=0).kept() is None
