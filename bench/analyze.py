"""Benchmark: analyze a generated tree of source files (default 10,000) and print files/s.

The tree is generated in a temporary folder from the labelled corpus in tests/corpus/analyze (each template is
copied into its own package folder with its collection names varied), so every file is parsed: the prefilter
that skips files without any SDK mention does not help here.

    .venv/bin/python bench/analyze.py [--files 10000] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shiftover.codebase.scan import analyze_path  # noqa: E402

CORPUS = ROOT / "tests" / "corpus" / "analyze"
SUFFIXES = (".ts", ".tsx", ".js", ".py")


def generate(target: Path, count: int) -> int:
    templates = sorted(p for p in CORPUS.rglob("*") if p.suffix in SUFFIXES)
    texts = [(p.relative_to(CORPUS), p.read_text(encoding="utf-8")) for p in templates]
    total_bytes = 0
    for i in range(count):
        rel, text = texts[i % len(texts)]
        variant = text.replace("'todos'", f"'todos_{i % 37}'").replace('"users"', f'"users_{i % 41}"')
        path = target / f"pkg{i // len(texts):04d}" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(variant, encoding="utf-8")
        total_bytes += len(variant)
    return total_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated tree and print its path")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shiftover-bench-analyze-"))
    try:
        size = generate(tmp, args.files)
        start = time.perf_counter()
        analysis = analyze_path(tmp)
        elapsed = time.perf_counter() - start
        assert analysis.files_scanned == args.files, (analysis.files_scanned, args.files)
        print(f"analyzed {analysis.files_scanned:,} files ({size / 1e6:.1f} MB) in {elapsed:.2f} s: "
              f"{analysis.files_scanned / elapsed:,.0f} files/s; {analysis.plan.total_calls:,} calls found, "
              f"{len(analysis.plan.steps):,} plan steps, {len(analysis.issues)} issues")
    finally:
        if args.keep:
            print(f"tree kept at {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
