"""Flow `analyze_codebase`: inventory an application's direct provider-SDK calls and plan its move to the unified API.

The analyzed tree is only read: files are parsed (tree-sitter for TS/TSX/JS, `ast` for Python), never imported or
run. The report is a markdown artifact (key `codebase-analysis`) and a JSON file.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from shiftover.codebase.model import Analysis
from shiftover.codebase.plan import ARTIFACT_KEY, render_markdown
from shiftover.codebase.scan import batches, check_root
from shiftover.codebase.walk import DEFAULT_EXCLUDES, DEFAULT_MAX_BYTES
from shiftover.tasks.analyze import build_report, list_source_files, scan_batch, write_report


class AnalyzeParams(BaseModel):
    path: str = Field(description="folder holding the application's source, as seen by the worker")
    output: str = Field("shiftover-analysis.json", description="JSON report to write")
    include: list[str] = Field(default_factory=list,
                               description="only files matching these globs (relative path or name); empty: all "
                                           "TS/TSX/JS/Python files")
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDES),
                               description="folders/files to skip (globs on the name or relative path)")
    max_file_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="larger files are skipped and reported")
    batch_size: int = Field(500, ge=1, le=10_000, description="files per scan task")


@flow(name="analyze_codebase", log_prints=False)
def analyze_codebase(params: AnalyzeParams) -> Analysis:
    """List every direct provider-SDK call of a source tree by service, flag the risky ones, plan the move."""
    root = check_root(params.path)
    log = get_run_logger()
    files, walk_issues = list_source_files(root, tuple(params.include), tuple(params.exclude),
                                           params.max_file_bytes)
    log.info("analyzing %d source files under %s", len(files), root)
    futures = [scan_batch.submit(root, chunk, params.max_file_bytes)
               for chunk in batches(files, params.batch_size)]
    analysis = build_report(root, [f.result() for f in futures], walk_issues)
    output = write_report(analysis, Path(params.output))
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=render_markdown(analysis),
                             description=f"SDK calls and migration plan for {root}")
    plan = analysis.plan
    log.info("%d calls (%d direct, %d need a person), ~%s h; report written to %s", plan.total_calls,
             plan.direct_calls, plan.flagged_calls, plan.total_hours, output)
    return analysis
