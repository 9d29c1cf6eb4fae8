"""Every benchmark in bench/ runs at a tiny size, so a benchmark broken by a change fails `make test`.

The figures are not checked (tiny sizes prove nothing about speed); each script must exit 0, which they do only when
their own checks hold (migrations validated or switched, no acknowledged write lost), and print its summary line.
Flows run against one running Prefect server (PREFECT_API_URL), as the README advises; bench/command_time.py
is given it with --api (its temporary-server and `shiftover serve` modes are left to full runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# script: (tiny arguments, a line its summary prints)
SMOKE: dict[str, tuple[list[str], str]] = {
    "analyze.py": (["--files", "20"], "files/s"),
    "api_overhead.py": (["--ops", "200", "--rounds", "1"], "postgresql API overhead over the raw client"),
    "migrate_pg.py": (["--rows", "2000", "--rounds", "1"], "ratio (flow rows/s ÷ pipe rows/s)"),
    "migrate_mixed.py": (["--rows", "300", "--chunk", "200", "--batch", "100"], "lite → lite2"),
    "bluegreen.py": (["--rows", "2000", "--writes-per-s", "20"], "lost records      0"),
    "failover_rto.py": (["--modes", "mirror", "--losses", "stop", "--loads", "quiet,busy", "--rounds", "1",
                         "--before-loss", "1", "--rate", "20"], "mirror |    stop | quiet RTO"),
    "command_time.py": (["--rows", "2000", "--rounds", "1", "--modes", "api", "--api", "{api}"],
                        "shiftover health (with a running API)"),
    "schema_move.py": (["--tables", "4", "--rows", "5", "--rounds", "1"], "shiftover schema phases"),
    # a generous probe timeout: a probe slowed by a busy CI machine is not what the smoke run is for
    "serve_soak.py": (["--minutes", "0.5", "--rows", "1000", "--health-timeout", "10"],
                      "overlapping runs of one deployment 0"),
}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert set(SMOKE) == {p.name for p in (ROOT / "bench").glob("*.py")}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_at_a_tiny_size(script: str, running_prefect_api, tmp_path: Path) -> None:
    api, _ = running_prefect_api
    args, expected = SMOKE[script]
    args = [a.replace("{api}", api) for a in args]
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert expected in done.stdout, done.stdout[-3000:]
