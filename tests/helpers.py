"""Small helpers shared by test modules: configuration files and value-by-value comparison."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter
from shiftover.adapters.config import Config, load_config


def write_config(tmp_path: Path, providers: dict[str, dict[str, Any]], **extra: Any) -> Path:
    data: dict[str, Any] = {"providers": providers, "control": {"url": f"sqlite:///{tmp_path}/control.db"}}
    data.update(extra)
    path = tmp_path / "backends.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def config(path: Path) -> Config:
    return load_config(path)


def all_records(adapter: Adapter, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    key = adapter.key_of(name)
    while True:
        rows = adapter.scan(name, after=after, limit=2000)
        out.extend(rows)
        if len(rows) < 2000:
            return out
        after = tuple(rows[-1][k] for k in key)


def assert_same_records(src: Adapter, dst: Adapter, name: str) -> int:
    """Every record equal value by value (in canonical form), in the same key order; returns how many."""
    a, b = all_records(src, name), all_records(dst, name)
    assert len(a) == len(b), f"{name}: {len(a)} source rows, {len(b)} target rows"
    for left, right in zip(a, b, strict=True):
        assert canonical.canonical(left) == canonical.canonical(right), f"{name}: {left} != {right}"
    return len(a)


async def newest_artifact(key: str) -> str:
    """The data of the newest artifact with this key, from the test session's Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                           limit=1, sort="CREATED_DESC")
    assert arts, f"no artifact {key}"
    return str(arts[0].data)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 40) -> None:
    """Stop a process started with `start_new_session=True` and everything it started: `sig` to its process group,
    then SIGKILL if it has not exited within `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
