"""Installed, Shiftover is one namespace: `shiftover.adapters`, `shiftover.tasks`, ... and `from shiftover import ...`.

An application with its own `tasks` or `flows` package (most Celery apps) installs Shiftover next to it: the wheel puts
nothing at the top level but `shiftover`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy, so the build writes nothing into the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".*", "tests", "bench", "build", "demo-data", "data", "test-output", "reports", "__pycache__", "*.egg-info"))
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "build", "--wheel", "-q", "-o", str(out), str(source)], check=True, timeout=300,
                   capture_output=True)
    return next(out.glob("shiftover-*.whl"))


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"shiftover"}
    for path in ("shiftover/__init__.py", "shiftover/adapters/base.py", "shiftover/tasks/retry.py",
                 "shiftover/flows/migrate.py", "shiftover/expectations/suites.py",
                 "shiftover/deployments/catalogue.py", "shiftover/deployments/prefect.yaml",
                 "shiftover/cli/main.py", "shiftover/service/process.py", "shiftover/control/store.py",
                 "shiftover/codebase/scan.py"):
        assert path in names, path
    packages = {str(Path(d).relative_to(ROOT)) for d, _, files in os.walk(ROOT / "shiftover", followlinks=True)
                if "__init__.py" in files}  # through the shiftover/<folder> symlinks
    assert {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")} == packages
    assert {"shiftover/adapters/postgres", "shiftover/adapters/firestore", "shiftover/codebase"} <= packages
    assert any(n.startswith("shiftover/flows/templates/") and n.endswith(".yaml") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "shiftover = shiftover.cli.main:main" in entry


def test_an_app_with_its_own_tasks_package_imports_both(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   timeout=300, capture_output=True)
    app = tmp_path / "app"
    for own in ("tasks", "flows", "adapters"):
        (app / own).mkdir(parents=True)
        (app / own / "__init__.py").write_text(f'WHO = "the app\'s {own}"\n')
    code = ("import sys, tasks, flows, adapters, shiftover\n"
            "from shiftover import Backend, load_config, BackendError\n"
            "import shiftover.tasks.retry, shiftover.adapters.canonical\n"
            "assert tasks.WHO == \"the app's tasks\" and adapters.WHO == \"the app's adapters\", tasks.WHO\n"
            f"assert shiftover.__file__.startswith({str(site)!r}), shiftover.__file__\n"
            "assert shiftover.tasks.retry.__file__.startswith(" + repr(str(site)) + ")\n"
            "print(Backend.__module__, load_config.__module__, BackendError.__module__)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=app, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{app}:{site}", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["shiftover.adapters.router", "shiftover.adapters.config",
                                   "shiftover.adapters.errors"]


def test_importing_shiftover_imports_nothing_heavy() -> None:
    code = ("import sys, shiftover\n"
            "heavy = [m for m in ('prefect', 'great_expectations', 'pandas', 'sqlalchemy') if m in sys.modules]\n"
            "print(heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
