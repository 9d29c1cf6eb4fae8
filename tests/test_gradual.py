"""A gradual migration over three runs; between runs the router sends each collection to the backend it lives on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shiftover.adapters.base import CollectionSchema
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.router import Backend
from shiftover.flows.migrate import migrate
from tests.helpers import assert_same_records, config, write_config
from tests.test_bluegreen import ITEMS, control

pytestmark = pytest.mark.usefixtures("prefect_harness")
NAMES = ("alpha", "beta", "gamma")


def _seed(cfg_path: Path) -> None:
    with open_adapter(config(cfg_path), "src") as src:
        for name in NAMES:
            src.create_collection(CollectionSchema(name, ITEMS.columns, ITEMS.key))
            src.upsert(name, [{"id": i, "name": f"{name} {i}", "qty": i, "price": Decimal("1.25"), "tags": [name]}
                              for i in range(1, 601)])


def _run(cfg_path: Path):  # type: ignore[no-untyped-def]
    return migrate(source="src", target="dst", strategy="gradual", config_path=str(cfg_path),
                   chunk_rows=300, batch_size=100, chunks_per_run=3)


def _write_through_router(cfg_path: Path, tag: str) -> None:
    with Backend(config(cfg_path)) as app:
        for name in NAMES:
            app.upsert(name, [{"id": 10_000, "name": tag, "qty": 0, "price": Decimal("0.01"), "tags": []}])
            app.delete(name, [(5,)])


def _where(cfg_path: Path, name: str) -> set[str]:
    cfg, out = config(cfg_path), set()
    for provider in ("src", "dst"):
        with open_adapter(cfg, provider) as a:
            if name in a.collections() and (rec := a.get(name, (10_000,))) is not None:
                out.add(f"{provider}:{rec['name']}")
    return out


@pytest.mark.parametrize("target_kind", ["postgresql", "sqlite"])
def test_gradual_over_three_runs_routes_each_collection(tmp_path: Path, pg_url: str, pg_url2: str,
                                                        target_kind: str) -> None:
    dst = {"kind": "postgresql", "url": pg_url2} if target_kind == "postgresql" else {"kind": "sqlite",
                                                                                    "url": "sqlite:///dst.db"}
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"}, "dst": dst},
                            failover={"router_follow_s": 0.1})
    _seed(cfg_path)
    store = control(cfg_path)
    run_ids = set()
    for step, moved in enumerate((["alpha"], ["alpha", "beta"]), start=1):
        report = _run(cfg_path)
        run_ids.add(report.run_id)
        assert report.status == "in-progress", report.error
        assert sorted(store.routes()) == moved and set(store.routes().values()) == {"dst"}
        assert store.pointer().provider == "src"
        _write_through_router(cfg_path, f"after run {step}")
        for name in NAMES:  # the router writes each collection where it lives now
            here, there = ("dst", "src") if name in moved else ("src", "dst")
            got = _where(cfg_path, name)
            assert f"{here}:after run {step}" in got and f"{there}:after run {step}" not in got, (name, got)
    final = _run(cfg_path)
    run_ids.add(final.run_id)
    assert final.status == "switched", final.error
    assert len(run_ids) == 1  # one migration, advanced by three runs
    pointer = store.pointer()
    assert (pointer.provider, pointer.epoch) == ("dst", 2) and store.routes() == {}
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as green:
        for name in NAMES:
            assert green.get(name, (5,)) is None
            assert green.count(name) == 600
        assert assert_same_records(src, green, "gamma") == 600  # the last one moved with everything written to it
        assert src.frozen() == list(NAMES) and src.capturing() == []
