"""Which files of a source tree to analyze: bounded, symlink-safe, skipping dependency and build folders."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from shiftover.codebase.model import FileIssue

SOURCE_SUFFIXES = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs", ".py")
DEFAULT_EXCLUDES = (
    "node_modules", "bower_components", "build", "dist", "out", "vendor", ".git", ".hg", ".svn", "venv", ".venv",
    "env", ".env", "virtualenv", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache", "site-packages",
    ".next", ".nuxt", ".svelte-kit", ".turbo", ".cache", "coverage", ".idea", ".vscode", "*.min.js", "*.d.ts",
)
DEFAULT_MAX_BYTES = 1_000_000


@dataclass
class WalkResult:
    files: list[str] = field(default_factory=list)  # relative POSIX paths, sorted
    issues: list[FileIssue] = field(default_factory=list)


def _matches(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _folder_entries(directory: Path, rel_dir: str, seen: set[tuple[int, int]],
                    result: WalkResult) -> list[os.DirEntry[str]] | None:
    """The folder's entries by name; None when it was seen already (a loop) or cannot be read (noted)."""
    try:
        st = directory.stat()
        if (st.st_dev, st.st_ino) in seen:
            return None
        seen.add((st.st_dev, st.st_ino))
        return sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        result.issues.append(FileIssue(file=rel_dir or ".", reason=f"unreadable folder: {exc.strerror}"))
        return None


def list_sources(root: Path, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = DEFAULT_EXCLUDES,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> WalkResult:
    """Source files under `root`. Symlinks are followed only while they stay inside `root`; each real directory is
    visited once, so a symlink loop ends. A folder holding `pyvenv.cfg` is a virtualenv and skipped. `include`
    globs (matched against the relative path or the name) narrow the default suffixes; `exclude` globs prune."""
    real_root = root.resolve()
    result = WalkResult()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    stack = [(real_root, "")]
    while stack:
        directory, rel_dir = stack.pop()
        entries = _folder_entries(directory, rel_dir, seen_dirs, result)
        if entries is None or (rel_dir and any(e.name == "pyvenv.cfg" for e in entries)):
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if _matches(rel, entry.name, exclude):
                continue
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    target = path.resolve(strict=True)
                    if target != real_root and real_root not in target.parents:
                        result.issues.append(FileIssue(file=rel, reason="symlink leads outside the analyzed root"))
                        continue
                is_dir = entry.is_dir()
                st = entry.stat()
            except (OSError, RuntimeError) as exc:  # dangling link, or a loop resolve() cannot end
                result.issues.append(FileIssue(file=rel, reason=f"unreadable: {getattr(exc, 'strerror', exc)}"))
                continue
            if is_dir:
                stack.append((path, rel))
                continue
            if not entry.name.endswith(SOURCE_SUFFIXES) or not entry.is_file():
                continue
            if include and not _matches(rel, entry.name, include):
                continue
            if (st.st_dev, st.st_ino) in seen_files:
                continue
            seen_files.add((st.st_dev, st.st_ino))
            if st.st_size > max_bytes:
                result.issues.append(FileIssue(file=rel, reason=f"skipped: {st.st_size} bytes > limit {max_bytes}"))
                continue
            result.files.append(rel)
    result.files.sort()
    return result
