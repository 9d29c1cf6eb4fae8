"""`shiftover analyze`: the typer command. Prefect is imported only when the flow runs (not with --no-prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shiftover.codebase.plan import ARTIFACT_KEY
from shiftover.codebase.walk import DEFAULT_EXCLUDES, DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from shiftover.codebase.model import Analysis


def analyze_command(
    path: Annotated[Path, typer.Argument(help="folder holding the application's source")],
    json_out: Annotated[Path, typer.Option("--json", help="JSON report to write; - prints it on stdout instead of "
                                                      "the summary")] = Path("shiftover-analysis.json"),
    include: Annotated[Optional[list[str]], typer.Option(
        "--include", help="only analyze files matching this glob (repeatable)")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", help="also skip files/folders matching this glob (repeatable; added to the defaults: "
                          "node_modules, build, dist, vendor, .git, virtualenvs ...)")] = None,
    no_default_excludes: Annotated[bool, typer.Option(
        "--no-default-excludes", help="do not skip node_modules, build, dist, vendor, ... by default")] = False,
    max_file_size: Annotated[int, typer.Option(help="skip (and report) files larger than this many bytes")] =
        DEFAULT_MAX_BYTES,
    no_prefect: Annotated[bool, typer.Option(
        "--no-prefect", help="run in this process without Prefect (no flow run, no artifact)")] = False,
) -> None:
    """List every direct provider-SDK call under PATH by service, flag the risky ones, and plan the migration."""
    from shiftover.codebase.scan import analyze_path, check_root, write_analysis

    check_root(path)
    to_stdout = str(json_out) == "-"
    if to_stdout:  # the flow run keeps its copy in the default file
        json_out = Path("shiftover-analysis.json")
    excludes = ([] if no_default_excludes else list(DEFAULT_EXCLUDES)) + list(exclude or [])
    if no_prefect:
        analysis = analyze_path(path, include=tuple(include or ()), exclude=tuple(excludes),
                                max_bytes=max_file_size)
        if not to_stdout:
            write_analysis(analysis, json_out)
    else:
        from rich.console import Console

        from shiftover.prefect_api import use_prefect_api

        use_prefect_api(Console(stderr=True), warm=("shiftover.flows.analyze_codebase",))
        from shiftover.flows.analyze_codebase import AnalyzeParams, analyze_codebase

        params = AnalyzeParams(path=str(path), output=str(json_out), include=list(include or []), exclude=excludes,
                               max_file_bytes=max_file_size)
        analysis = analyze_codebase(params)
    if to_stdout:
        print(analysis.model_dump_json(indent=2))
        return
    _print_summary(analysis, json_out, with_artifact=not no_prefect)


def _print_summary(analysis: Analysis, json_out: Path, *, with_artifact: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from shiftover.cli.tables import Col, show
    from shiftover.codebase.sdks import FLAG_TEXT, OPERATIONS, SERVICES

    console = Console()
    plan = analysis.plan
    by_service = Table(title=f"Direct provider-SDK calls in {analysis.root} ({analysis.files_scanned} files)")
    by_service.add_column("service")
    for op_name in OPERATIONS:
        by_service.add_column(op_name, justify="right")
    by_service.add_column("total", justify="right", style="bold")
    for service in SERVICES:
        ops = analysis.by_service.get(service)
        if ops:
            by_service.add_row(service, *(str(ops.get(o, 0) or "") for o in OPERATIONS), str(sum(ops.values())))
    console.print(by_service)
    if analysis.flags:
        flags = Table(title="Risk flags")
        flags.add_column("flag")
        flags.add_column("calls", justify="right")
        flags.add_column("why it matters")
        for name, count in analysis.flags.items():
            flags.add_row(name, str(count), FLAG_TEXT.get(name, ""))
        console.print(flags)
    show(console, "Plan (least risky first)", (
        Col("#", justify="right"), Col("service"), Col("collection", "name"), Col("calls", justify="right"),
        Col("flagged", justify="right"), Col("files", justify="right"), Col("minutes", justify="right")),
        [(s.order, s.service, s.collection or "(dynamic or none)", s.calls, s.flagged, len(s.files), f"{s.minutes:g}")
         for s in plan.steps[:20]])
    if len(plan.steps) > 20:
        console.print(f"{len(plan.steps) - 20} more steps in {json_out}", highlight=False)
    console.print(f"[bold]{plan.total_calls}[/] calls in {plan.files_touched} files: [green]{plan.direct_calls} map "
                  f"directly[/], [yellow]{plan.flagged_calls} need a person[/]; about [bold]{plan.total_hours} h[/] "
                  f"({plan.effort_model.describe()}).", highlight=False)
    if analysis.issues:
        console.print(f"{len(analysis.issues)} files not fully analyzed (see the JSON report).", highlight=False)
    where = f"JSON report: {json_out}" + (f"; markdown artifact '{ARTIFACT_KEY}' in Prefect" if with_artifact else "")
    console.print(where, highlight=False)
