"""health_sweep: every provider probed at once, each probe recorded, a table artifact, state changes as events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re

import pytest
from typer.testing import CliRunner

from shiftover.adapters.base import ProbeResult
from shiftover.adapters.config import load_config
from shiftover.adapters.memory import MemoryAdapter
from shiftover.control.store import ControlStore
from shiftover.flows.health_sweep import HealthSweepParams, health_sweep
from tests.fixtures_clusters import write_config


@pytest.fixture
def config_path(tmp_path):
    MemoryAdapter.store("up")
    MemoryAdapter.store("down").down = True
    return write_config(tmp_path, {
        "up": {"kind": "memory", "url": "memory://up", "role": "primary", "priority": 1},
        "down": {"kind": "memory", "url": "memory://down", "role": "standby", "priority": 2},
        "slow": {"kind": "memory", "url": "memory://slow", "role": "standby", "priority": 3,
                 "options": {"latency_ms": 1500}},
        "file": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'standby.db'}", "role": "standby", "priority": 4},
    }, health={"timeout_s": 0.5, "canary": True})


async def _artifact(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:  # the newest: other tests of the session publish the same key
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                            sort=ArtifactSort.CREATED_DESC)
    return found[0]


async def _versions(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return len(await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


def test_sweep_records_every_probe_and_publishes_the_table(prefect_harness, config_path):
    result = {h.provider: h for h in health_sweep(HealthSweepParams(config_path=str(config_path)))}
    assert {n: h.status for n, h in result.items()} == {"up": "healthy", "down": "down", "slow": "down",
                                                        "file": "healthy"}
    assert "BACKEND_006" in result["down"].error and "BACKEND_005" in result["slow"].error
    assert result["file"].checks == ("connect", "read", "write", "delete")  # canary allowed by the config
    assert result["up"].active and result["up"].uptime == 1.0

    cfg = load_config(config_path)
    control = ControlStore(cfg.control.url.get_secret_value())
    assert [p.ok for p in control.probes("down")] == [False]
    assert control.health_state("down") == "down" and control.health_state("up") == "healthy"

    artifact = asyncio.run(_artifact("health-sweep"))
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    by_name = {row["provider"]: row for row in table}
    assert set(by_name) == {"up (active)", "down", "slow", "file"}
    assert by_name["down"]["status"] == "down" and by_name["down"]["uptime"] == "0.00%"
    assert by_name["up (active)"]["uptime"] == "100.00%"
    assert all(k in by_name["file"] for k in ("latency_ms", "error", "status"))

    MemoryAdapter.store("down").down = False  # observed degraded (uptime 50% over the window): held by the debounce
    again = {h.provider: h for h in health_sweep(HealthSweepParams(config_path=str(config_path), providers=["down"]))}
    assert again["down"].status == "down" and (again["down"].observed, again["down"].pending) == ("degraded", 1)
    assert again["down"].uptime == 0.5 and control.health_state("down") == "down"
    third = {h.provider: h for h in health_sweep(HealthSweepParams(config_path=str(config_path), providers=["down"]))}
    assert third["down"].previous == "down" and third["down"].status == "degraded"  # two sweeps agreed (debounce 2)


def test_sweep_draws_latency_and_uptime_per_provider_over_the_kept_history(prefect_harness, config_path):
    control = ControlStore(load_config(config_path).control.url.get_secret_value())
    then = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    for i in range(24):  # two days ago, 24 probes of `up`, one in four failed
        control.record_probe(ProbeResult("up", i % 4 != 0, 10.0 + i, None if i % 4 else "refused", (),
                                         then + dt.timedelta(minutes=i)))
    health_sweep(HealthSweepParams(config_path=str(config_path), trend=True))

    md = asyncio.run(_artifact("health-trend")).data
    (image,) = re.findall(r"!\[latency and uptime per provider\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    svg = base64.b64decode(image).decode()
    for kind in ("latency", "uptime"):  # one series per provider in each panel, in the configuration's order
        assert re.findall(rf'<g class="series {kind}" data-provider="([^"]+)"', svg) == ["up", "down", "slow", "file"]
    up = re.search(r'<g class="series uptime" data-provider="up">(.*?)</g>', svg).group(1)
    assert up.startswith("<title>up uptime</title><circle") and up.count("<circle") == 2  # two days apart: a gap
    assert f">{then:%m-%d %H:%M}</text>" in svg, "the time axis starts at the oldest probe kept"
    ink = re.findall(r'<(?:svg|text) [^>]*?fill="([^"]+)"', svg)
    assert "#222222" in ink and not set(ink) & {"#000000", "black", "#ffffff", "white"}
    assert "| up | 25 | 76.00% |" in md  # 18 of the 24 seeded answered, and the sweep's probe
    assert "| down | 1 | 0.00% | – |" in md

    drawn = asyncio.run(_versions("health-trend"))
    health_sweep(HealthSweepParams(config_path=str(config_path), providers=["up"]))
    assert asyncio.run(_versions("health-trend")) == drawn, "within 5 minutes of the last chart a sweep draws none"


def test_health_command_prints_json(prefect_harness, config_path):
    from shiftover.cli.main import app

    run = CliRunner().invoke(app, ["health", "--config", str(config_path), "--json", "--no-canary"])
    rows = {r["provider"]: r for r in json.loads(run.stdout)}
    assert rows["down"]["status"] == "down" and rows["up"]["status"] == "healthy"
    assert run.exit_code == 1  # a provider is down
