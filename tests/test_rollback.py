"""Rollback after writes on green: blue gets them first, then the pointer moves back; release lifts the fence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shiftover.adapters.errors import MigrationFailed, WriteFrozen
from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from shiftover.flows.rollback import ReleaseParams, RollbackParams, release, rollback
from tests.helpers import assert_same_records, config, write_config
from tests.test_bluegreen import control, seed_items

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize("green_kind", ["postgresql", "sqlite"])
def test_rollback_copies_green_writes_back_then_moves_pointer(tmp_path: Path, pg_url: str, pg_url2: str,
                                                              green_kind: str) -> None:
    green = {"kind": "postgresql", "url": pg_url2} if green_kind == "postgresql" else {"kind": "sqlite",
                                                                                      "url": "sqlite:///g.db"}
    cfg_path = write_config(tmp_path, {"blue": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "green": green})
    seed_items(cfg_path, "blue", 1500)
    report = migrate(source="blue", target="green", strategy="blue_green", config_path=str(cfg_path),
                     chunk_rows=500, batch_size=200)
    assert report.status == "switched"
    cfg = config(cfg_path)
    with open_adapter(cfg, "green") as g:  # the app now writes on green
        g.upsert("items", [{"id": 5000, "name": "after cutover", "qty": 1, "price": Decimal("9.99"), "tags": [1]}])
        g.update("items", (7,), {"name": "edited on green"})
        g.delete("items", [(8,), (9,)])
    with open_adapter(cfg, "blue") as b, pytest.raises(WriteFrozen):
        b.delete("items", [(10,)])  # blue is fenced meanwhile
    with pytest.raises(MigrationFailed, match="active backend"):
        release(ReleaseParams(provider="green", config_path=str(cfg_path)))
    back = rollback(RollbackParams(config_path=str(cfg_path), chunk_rows=400))
    assert back.status == "switched", back.error
    pointer = control(cfg_path).pointer()
    assert (pointer.provider, pointer.epoch) == ("blue", 3)
    with open_adapter(cfg, "blue") as b, open_adapter(cfg, "green") as g:
        assert assert_same_records(g, b, "items") == 1499
        assert b.get("items", (7,))["name"] == "edited on green" and b.get("items", (8,)) is None
        assert b.frozen() == [] and g.frozen() == ["items"]
        b.delete("items", [(10,)])  # blue takes writes again
        with pytest.raises(WriteFrozen):
            g.delete("items", [(10,)])
    assert release(ReleaseParams(provider="green", config_path=str(cfg_path))) == ["items"]
    with open_adapter(cfg, "green") as g:
        assert g.frozen() == [] and g.capturing() == []
        g.delete("items", [(10,)])
    assert control(cfg_path).freezes() == []


def test_release_lifts_blue_fence_and_ends_capture(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = write_config(tmp_path, {"blue": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "green": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "blue", 300)
    assert migrate(source="blue", target="green", strategy="blue_green",
                   config_path=str(cfg_path)).status == "switched"
    assert release(ReleaseParams(provider="blue", config_path=str(cfg_path))) == ["items"]
    cfg = config(cfg_path)
    with open_adapter(cfg, "blue") as b, open_adapter(cfg, "green") as g:
        assert b.frozen() == [] and g.capturing() == [] and b.capturing() == []
    with pytest.raises(MigrationFailed, match="no finished blue-green run"):
        rollback(RollbackParams(config_path=str(cfg_path), run_id="nope"))
