"""Hostile configuration files: whatever the bytes, load_config returns a Config or raises ConfigInvalid
(BACKEND_002) naming the field or line — never another exception, a hang or a memory blow-up — and
`shiftover status --config BAD` prints one line starting with BACKEND_ and no traceback."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiftover.adapters.config import Config, load_config
from shiftover.adapters.errors import BackendError, ConfigInvalid

ROOT = Path(__file__).resolve().parent.parent

KEYS = ["providers", "control", "health", "failover", "migration", "kind", "url", "role", "priority", "options",
        "timeout_s", "window_s", "history_days", "fallback", "mappings", "flatten", "columns", "types", "strategy",
        "batch_size", "workers", "enabled", "cooldown_s", "failback", "a", "b", "pg", "path"]
KINDS = ["sqlite", "memory", "postgresql", "supabase", "firestore", "mongodb", "nope"]

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.sampled_from(KINDS + KEYS),
    st.dates(), st.datetimes(timezones=st.just(dt.timezone.utc)), st.binary(max_size=10),
    st.sampled_from(["sqlite:///x.db", "sqlite://x", "postgresql://u:p@h:abc/db", "mysql://u:p@h/db", "foo",
                     "postgresql+psycopg2://h/db", "sqlite:///:memory:", "${NOT_SET_ANYWHERE}", "${HOME:-x}", ""]),
)
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), inner, max_size=4),
    st.sets(st.one_of(st.text(max_size=5), st.integers()), max_size=3)), max_leaves=25)


def _valid() -> dict:
    return {"providers": {"a": {"kind": "sqlite", "url": "sqlite:///a.db", "role": "primary"},
                          "b": {"kind": "memory", "priority": 2}},
            "control": {"url": "sqlite:///control.db"}, "health": {"timeout_s": 1},
            "failover": {"fallback": ["b"]}, "migration": {"batch_size": 10}}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file with one field (at any depth) replaced, deleted or added."""
    data = _valid()
    node = data
    path = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4))
    for key in path[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    if draw(st.booleans()) and path[-1] in node:
        del node[path[-1]]
    else:
        node[path[-1]] = draw(values)
    return yaml.safe_dump(data, allow_unicode=True).encode()


def _bomb(levels: int, width: int) -> bytes:
    lines = ['l0: &l0 ["lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + f"\nproviders: {{a: {{kind: sqlite, options: *l{levels}}}}}\n").encode()


hostile = st.one_of(
    st.builds(_bomb, st.integers(1, 12), st.integers(2, 12)),
    st.builds(lambda n: ("providers: " + "[" * n + "\n").encode(), st.integers(10, 3000)),  # never closed
    st.builds(lambda n, brackets: ("providers: " + brackets[0] * n + "1" + brackets[1] * n + "\n").encode(),
              st.integers(10, 3000), st.sampled_from([("[", "]"), ("{a: ", "}")])),
    st.builds(lambda digits: f"providers: {{a: {{kind: sqlite, priority: {'7' * digits}}}}}\n".encode(),
              st.integers(4000, 6000)),
    st.builds(lambda enc: yaml.safe_dump(_valid(), allow_unicode=True).replace("a.db", "ä.db").encode(enc),
              st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252"])),
    st.builds(lambda v: f"providers: {v}\n".encode(), st.sampled_from(["hello", "5", "!!set {a, b}", "[a, b]",
                                                                        "~", "!!binary aGk=", "2020-01-01", "1.5"])),
    st.builds(lambda url: yaml.safe_dump({**_valid(), "control": {"url": url}}).encode(), st.text(max_size=40)),
    st.builds(lambda d: yaml.safe_dump({"providers": {"a": {"kind": "sqlite", "priority": d}}}).encode(),
              st.sampled_from(["2020-13-45", "2020-02-30"])).map(lambda b: b.replace(b"'", b"")),
)
files = st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode), mutated(),
                  values.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()), hostile)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(content=files)
def test_load_config_raises_only_backend_002(scratch: Path, content: bytes) -> None:
    path = scratch / "backends.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    try:
        cfg = load_config(path)
    except ConfigInvalid as exc:
        assert exc.code == "BACKEND_002" and str(exc).startswith("BACKEND_002: ")
        assert "\n" not in exc.message and len(exc.message) < 1000
    except BackendError as exc:  # pragma: no cover - a failure shows which one
        pytest.fail(f"{type(exc).__name__} {exc.code} instead of BACKEND_002: {exc}")
    else:
        assert isinstance(cfg, Config) and cfg.providers
    assert time.monotonic() - started < 5


def test_billion_laughs_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    path.write_bytes(_bomb(9, 10))  # 10^9 "lol"s once expanded
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(ConfigInvalid) as refused:
        load_config(path)
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1 and peak < 100 * 2**20, (elapsed, peak)
    assert "alias" in str(refused.value) and refused.value.code == "BACKEND_002"


@pytest.mark.parametrize("content, names", [
    (b"providers: hello\n", "providers"),
    (b"providers:\n  a: {kind: sqlite, priority: " + b"9" * 5000 + b"}\n", "line 2"),
    (b"providers: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested deeper"),
    ("providers: {a: {kind: sqlite}}\n".encode("utf-16"), "UTF-16"),
    (b"providers: {a: {kind: sqlite, url: \"caf\xe9\"}}\n", "not UTF-8"),
    (b"providers: {a: {kind: sqlite}}\ncontrol: {url: 'postgresql://u:p@h:abc/db'}\n", "control.url"),
    (b"providers: {a: {kind: sqlite}}\ncontrol: {url: 'mysql://u:p@h/db'}\n", "control.url"),
    (_bomb(9, 10), "alias"),
])
def test_status_with_a_bad_config_prints_one_backend_line(tmp_path: Path, content: bytes, names: str) -> None:
    bad = tmp_path / "backends.yaml"
    bad.write_bytes(content)
    env = {**os.environ, "SHIFTOVER_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "80"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "shiftover.cli.main", "status", "--config", str(bad)],
                          capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("BACKEND_002: ") and names in lines[0], proc.stderr
    assert "what to do:" in lines[0] and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
