"""Honest time (flows/estimates.py): a repeat migration's estimate comes from the rate this installation measured, and
an immediate migration that freezes the source longer than migration.max_freeze_s is flagged before and after."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.cli.demo_data import seed
from shiftover.flows.migrate import migrate
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _cfg(tmp_path: Path, max_freeze_s: float = 60.0) -> Path:
    return write_config(tmp_path, {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                                   "b": {"kind": "sqlite", "url": "sqlite:///b.db"},
                                   "c": {"kind": "sqlite", "url": "sqlite:///c.db"}},
                        migration={"max_freeze_s": max_freeze_s, "chunk_rows": 2000})


def test_a_repeat_migration_is_estimated_from_the_last_one_within_2x(tmp_path: Path) -> None:
    cfg_path = _cfg(tmp_path)
    with open_adapter(config(cfg_path), "a") as src:
        seed(src, 6000)
    first_plan = migrate(source="a", target="b", config_path=str(cfg_path), dry_run=True)
    assert any(n.startswith("estimated from default rates") for n in first_plan.notes), first_plan.notes
    done = migrate(source="a", target="b", config_path=str(cfg_path), switch=False)
    assert done.status == "validated"
    again = migrate(source="a", target="c", config_path=str(cfg_path), dry_run=True)
    assert any(n.startswith(f"estimated from run {done.run_id} (a → b: 6,000 rows in") for n in again.notes)
    assert again.estimated_seconds is not None
    assert done.seconds / 2 <= again.estimated_seconds <= done.seconds * 2


def test_a_freeze_longer_than_the_limit_is_flagged_before_and_after(tmp_path: Path) -> None:
    cfg_path = _cfg(tmp_path, max_freeze_s=0.001)
    with open_adapter(config(cfg_path), "a") as src:
        seed(src, 300)
    planned = migrate(source="a", target="b", config_path=str(cfg_path), dry_run=True)
    assert any(n.startswith("warning: immediate would freeze writes on 'a' for about") and "blue_green" in n
               for n in planned.notes), planned.notes
    done = migrate(source="a", target="b", config_path=str(cfg_path), switch=False)
    assert any(n.startswith("warning: immediate froze writes on 'a' for") for n in done.notes), done.notes
    (tmp_path / "relaxed").mkdir()
    relaxed = _cfg(tmp_path / "relaxed")
    with open_adapter(config(relaxed), "a") as src:
        seed(src, 300)
    calm = migrate(source="a", target="b", config_path=str(relaxed), switch=False)
    assert not any(n.startswith("warning: immediate") for n in calm.notes), calm.notes
