"""approve_cutover: the run pauses before the freeze with the validation summary; approval cuts over, rejection and
timeout end it with the pointer unchanged. Resumed through the Prefect client, as the UI does."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from tests.helpers import assert_same_records, config, write_config
from tests.helpers import newest_artifact as _artifact
from tests.test_bluegreen import control, seed_items

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _start(cfg_path: Path, **kw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def run() -> None:
        try:
            box["report"] = ctx.run(migrate, source="src", target="dst", strategy="blue_green",
                                   config_path=str(cfg_path), approve_cutover=True, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _paused_run_id(box: dict[str, Any], timeout: float = 120):  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert "error" not in box, box.get("error")
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            if runs:
                return runs[0].id
            time.sleep(0.5)
    raise AssertionError("the run never paused for approval")


def _setup(tmp_path: Path, pg_url: str, pg_url2: str) -> Path:
    cfg_path = write_config(tmp_path, {"src": {"kind": "postgresql", "url": pg_url, "role": "primary"},
                                       "dst": {"kind": "postgresql", "url": pg_url2}})
    seed_items(cfg_path, "src", 800)
    return cfg_path


@pytest.mark.parametrize("approve", [True, False])
def test_approval_through_the_prefect_client(tmp_path: Path, pg_url: str, pg_url2: str, approve: bool) -> None:
    from prefect.flow_runs import resume_flow_run

    cfg_path = _setup(tmp_path, pg_url, pg_url2)
    thread, box = _start(cfg_path)
    run_id = _paused_run_id(box)
    summary = __import__("asyncio").run(_artifact("migrate-src-to-dst-approval"))
    assert "Approve the cutover src → dst?" in summary and "| items | 800 | 800 |" in summary
    with open_adapter(config(cfg_path), "src") as src:  # still live while it waits: nothing frozen
        assert src.frozen() == [] and src.capturing() == ["items"]
        src.delete("items", [(1,)])
    resume_flow_run(run_id, run_input={"approve": approve, "comment": "checked" if approve else "not today"})
    thread.join(120)
    report = box["report"]
    pointer = control(cfg_path).pointer()
    with open_adapter(config(cfg_path), "src") as src, open_adapter(config(cfg_path), "dst") as dst:
        if approve:
            assert report.status == "switched" and "cutover approved: checked" in report.notes
            assert (pointer.provider, pointer.epoch) == ("dst", 2)
            assert assert_same_records(src, dst, "items") == 799
        else:
            assert report.status == "blocked" and report.error == "cutover rejected: not today"
            assert (pointer.provider, pointer.epoch) == ("src", 1)
            assert src.frozen() == [] and src.capturing() == []  # ends cleanly: no freeze, no triggers left
            src.delete("items", [(2,)])
    assert control(cfg_path).runs(limit=1)[0].status == ("succeeded" if approve else "rejected")


def test_approval_timeout_leaves_pointer(tmp_path: Path, pg_url: str, pg_url2: str) -> None:
    cfg_path = _setup(tmp_path, pg_url, pg_url2)
    thread, box = _start(cfg_path, approval_timeout_s=3)
    thread.join(120)
    report = box["report"]
    assert report.status == "blocked" and report.error == "no approval within 3 s"
    assert control(cfg_path).pointer().provider == "src"
