"""The Backend router: routes, following a switch, stale-epoch refusal, freeze waits, mirror mode."""

from __future__ import annotations

import threading
import time

import pytest

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import ProviderUnavailable, StaleEpoch, WriteFrozen
from shiftover.adapters.memory import MemoryAdapter
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.router import Backend
from shiftover.control.store import ControlStore
from tests.fixtures_clusters import write_config

ITEMS = CollectionSchema("items", (Column("id", "integer", False), Column("v", "text")), ("id",))


@pytest.fixture
def config(tmp_path):
    path = write_config(tmp_path, {
        "a": {"kind": "memory", "url": "memory://a", "role": "primary", "priority": 1},
        "b": {"kind": "memory", "url": "memory://b", "role": "standby", "priority": 2},
        "c": {"kind": "memory", "url": "memory://c", "role": "standby", "priority": 3},
    }, failover={"router_follow_s": 0.3}, migration={"freeze_wait_s": 0.4})
    cfg = load_config(path)
    for name in ("a", "b", "c"):
        with open_adapter(cfg, name) as a:
            a.create_collection(ITEMS)
    return cfg


def rows(cfg, name):
    with open_adapter(cfg, name) as a:
        return {r["id"]: r["v"] for r in a.scan("items")}


def test_writes_go_to_the_active_provider_and_follow_a_switch_within_the_bound(config):
    with Backend(config) as backend:
        backend.upsert("items", [{"id": 1, "v": "one"}])
        assert rows(config, "a") == {1: "one"} and rows(config, "b") == {}
        control = ControlStore(config.control.url.get_secret_value())
        control.switch(expected_epoch=1, provider="b", reason="test")
        backend.upsert("items", [{"id": 2, "v": "cached view"}])  # within router_follow_s: may still go to a
        time.sleep(0.35)
        backend.upsert("items", [{"id": 3, "v": "after"}])
        assert rows(config, "b").get(3) == "after"
        assert backend.active == "b" and backend.epoch == 2
        assert backend.get("items", (3,)) == {"id": 3, "v": "after"}


def test_an_unreachable_active_provider_makes_the_router_reread_the_pointer_at_once(config):
    control = ControlStore(config.control.url.get_secret_value())
    with Backend(config) as backend:
        assert backend.active == "a"
        MemoryAdapter.store("a").down = True
        with pytest.raises(ProviderUnavailable):
            backend.upsert("items", [{"id": 1, "v": "x"}])  # the pointer has not moved: the error surfaces
        control.switch(expected_epoch=1, provider="b", reason="failover")
        backend.upsert("items", [{"id": 1, "v": "x"}])  # no waiting for router_follow_s
        assert rows(config, "b") == {1: "x"}


def test_a_writer_holding_a_stale_epoch_is_refused(config):
    control = ControlStore(config.control.url.get_secret_value())
    with Backend(config, epoch=1) as holder:
        holder.upsert("items", [{"id": 1, "v": "ok"}])
        control.switch(expected_epoch=1, provider="b", reason="failover")
        with pytest.raises(StaleEpoch) as err:
            holder.upsert("items", [{"id": 2, "v": "split brain"}])
    assert err.value.code == "BACKEND_011"
    assert 2 not in rows(config, "a") and 2 not in rows(config, "b")


def test_a_freeze_is_waited_out_and_then_fails_with_retryable_write_frozen(config):
    control = ControlStore(config.control.url.get_secret_value())
    control.set_freeze("a", ["items"], run_id="r1", reason="cutover")
    with Backend(config) as backend:
        start = time.monotonic()
        with pytest.raises(WriteFrozen) as err:
            backend.upsert("items", [{"id": 1, "v": "x"}])
        assert 0.35 <= time.monotonic() - start < 2
        assert err.value.code == "BACKEND_010" and err.value.transient
        threading.Timer(0.15, lambda: control.clear_freeze("a")).start()
        backend.upsert("items", [{"id": 1, "v": "after the freeze"}])
    assert rows(config, "a") == {1: "after the freeze"}


def test_an_engine_freeze_is_waited_out_too(config):
    with open_adapter(config, "a") as a:
        a.freeze(["items"], reason="engine")
    with Backend(config) as backend, pytest.raises(WriteFrozen):
        backend.upsert("items", [{"id": 1, "v": "x"}])
    assert rows(config, "a") == {}


def test_mirror_mode_acknowledges_only_writes_the_mirror_holds(config):
    with Backend(config, mirror=True) as backend:
        assert backend.mirror == ("b",)
        backend.upsert("items", [{"id": 1, "v": "both"}])
        assert rows(config, "a") == rows(config, "b") == {1: "both"}
        MemoryAdapter.store("b").down = True
        with pytest.raises(ProviderUnavailable, match="not acknowledged"):
            backend.upsert("items", [{"id": 2, "v": "primary only"}])


def test_per_collection_routes_win_over_the_pointer(config):
    control = ControlStore(config.control.url.get_secret_value())
    control.set_route("items", "c")
    assert control.routes() == {"items": "c"}
    with Backend(config) as backend:
        backend.upsert("items", [{"id": 7, "v": "routed"}])
        assert backend.count("items") == 1
    assert rows(config, "c") == {7: "routed"} and rows(config, "a") == {}
    control.clear_route("items")
    assert control.routes() == {}
