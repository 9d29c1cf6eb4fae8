"""Tasks of the `analyze_codebase` flow: list the source files, scan them in batches, write the JSON report."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from shiftover.codebase.model import Analysis, FileIssue, ScanResult
from shiftover.codebase.plan import build_analysis
from shiftover.codebase.scan import analyze_files, write_analysis
from shiftover.codebase.walk import list_sources


@task(cache_policy=NO_CACHE)
def list_source_files(root: Path, include: tuple[str, ...], exclude: tuple[str, ...],
                      max_bytes: int) -> tuple[list[str], list[FileIssue]]:
    walked = list_sources(root, include=include, exclude=exclude, max_bytes=max_bytes)
    return walked.files, walked.issues


@task(cache_policy=NO_CACHE)
def scan_batch(root: Path, files: list[str], max_bytes: int) -> ScanResult:
    return analyze_files(root, files, max_bytes=max_bytes)


@task(cache_policy=NO_CACHE)
def build_report(root: Path, results: list[ScanResult], walk_issues: list[FileIssue]) -> Analysis:
    scan = ScanResult(root=str(root), issues=list(walk_issues))
    for result in results:
        scan.merge(result)
    return build_analysis(scan)


@task(cache_policy=NO_CACHE)
def write_report(analysis: Analysis, output: Path) -> Path:
    return write_analysis(analysis, output)
