"""The analyzer is safe on any tree: broken and non-UTF-8 files, symlink loops and escapes, big and vendored files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shiftover.adapters.errors import InvalidRequest
from shiftover.codebase.scan import analyze_path
from shiftover.codebase.walk import list_sources

CORPUS = Path(__file__).parent / "corpus" / "analyze"
SUPABASE_CALL = "import { createClient } from '@supabase/supabase-js'\nconst s = createClient(u, k)\n" \
                "export const q = () => s.from('notes').select('*')\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    shutil.copytree(CORPUS, root)
    return root


def test_broken_and_non_utf8_files_are_reported_not_fatal(tree: Path) -> None:
    (tree / "broken.js").write_text(SUPABASE_CALL + "export function broken( {\n  return s.from('x').insert({\n")
    (tree / "broken.py").write_text("from pymongo import MongoClient\ndef broken(:\n    return 1\n")
    (tree / "latin1.py").write_bytes(b"from pymongo import MongoClient\nname = 'caf\xe9'\n")
    analysis = analyze_path(tree)
    reasons = {i.file: i.reason for i in analysis.issues}
    assert "does not parse at line 2" in reasons["broken.py"]
    assert "not UTF-8" in reasons["latin1.py"]
    assert "syntax errors" in reasons["broken.js"]
    assert any(f.file == "broken.js" and f.line == 3 and f.collection == "notes" for f in analysis.findings)
    assert analysis.plan.total_calls >= 121  # the rest of the tree is analyzed as before


def test_symlink_loop_and_escape_are_survived(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ts").write_text(SUPABASE_CALL)
    os.symlink(tree, tree / "web" / "loop")  # a loop back to the root
    os.symlink(tree / "web", tree / "web" / "src" / "up")  # a loop into a parent
    os.symlink(outside, tree / "escape")  # leaves the root
    os.symlink(outside / "secret.ts", tree / "escape.ts")
    os.symlink(tree / "missing", tree / "dangling.ts")
    walked = list_sources(tree)
    assert not any("secret" in f or f.startswith("escape") for f in walked.files)
    assert len(walked.files) == len(set(walked.files)) == len(list_sources(CORPUS).files)
    reasons = {i.file: i.reason for i in walked.issues}
    assert "outside" in reasons["escape"] and "outside" in reasons["escape.ts"]
    assert "dangling.ts" in reasons


def test_dependency_build_and_venv_folders_are_skipped_by_default(tree: Path) -> None:
    for folder in ("node_modules/lib", "dist", "build", "vendor", ".git", "myenv"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / "client.js").write_text(SUPABASE_CALL)
    (tree / "myenv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    files = list_sources(tree).files
    assert not any(f.startswith(("node_modules", "dist", "build", "vendor", ".git", "myenv")) for f in files)
    assert "dist/client.js" in list_sources(tree, exclude=("node_modules",)).files
    only_py = list_sources(tree, include=("*.py",)).files
    assert only_py and all(f.endswith(".py") for f in only_py)


def test_files_over_the_size_limit_are_skipped_and_reported(tree: Path) -> None:
    (tree / "huge.js").write_text(SUPABASE_CALL + "//" + "x" * 5000 + "\n")
    walked = list_sources(tree, max_bytes=4000)
    assert "huge.js" not in walked.files
    assert any(i.file == "huge.js" and "limit 4000" in i.reason for i in walked.issues)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist") as exc:
        analyze_path(tmp_path / "nope")
    assert exc.value.code == "BACKEND_014" and "shiftover analyze" in exc.value.hint
    (tmp_path / "file.py").write_text("x = 1\n")
    with pytest.raises(InvalidRequest, match="not a folder"):
        analyze_path(tmp_path / "file.py")


def test_pathologically_nested_sources_are_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "deep.js").write_text(SUPABASE_CALL + "export const t = s.from('a' + " + " + ".join(["x"] * 20000)
                                      + ").select()\n")
    (tmp_path / "deep.py").write_text("import pymongo\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n")
    (tmp_path / "ok.py").write_text("from pymongo import MongoClient\nMongoClient().shop.users.find_one({})\n")
    analysis = analyze_path(tmp_path)
    assert analysis.files_scanned == 3
    assert any(f.file == "ok.py" and f.collection == "users" for f in analysis.findings)
    assert {i.file for i in analysis.issues} == {"deep.js", "deep.py"}
