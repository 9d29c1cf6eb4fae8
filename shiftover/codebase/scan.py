"""Analyze source files: read (bounded, UTF-8), pick the parser by suffix, collect findings or a reported issue."""

from __future__ import annotations

from pathlib import Path

from shiftover.adapters.errors import InvalidRequest
from shiftover.codebase.findings import FindingSink
from shiftover.codebase.javascript import GRAMMARS, analyze_js
from shiftover.codebase.model import Analysis, EffortModel, FileIssue, FileResult, ScanResult
from shiftover.codebase.plan import build_analysis
from shiftover.codebase.python import analyze_python
from shiftover.codebase.sdks import PREFILTER
from shiftover.codebase.walk import DEFAULT_EXCLUDES, DEFAULT_MAX_BYTES, list_sources


def analyze_source(rel: str, data: bytes) -> FileResult:
    """Findings of one file's bytes. Only files that mention an SDK (or a local client/model) are parsed."""
    result = FileResult(file=rel)
    if not any(token in data for token in PREFILTER):
        return result
    suffix = Path(rel).suffix
    sink = FindingSink(rel)
    if suffix == ".py":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.issue = FileIssue(file=rel, reason=f"not UTF-8 (byte {exc.start}); skipped")
            return result
        try:
            analyze_python(text, sink)
        except (SyntaxError, ValueError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            where = f" at line {line}" if line else ""
            result.issue = FileIssue(file=rel, reason=f"does not parse{where}: {type(exc).__name__}; skipped")
            return result
    elif suffix in GRAMMARS:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.issue = FileIssue(file=rel, reason=f"not UTF-8 (byte {exc.start}); skipped")
            return result
        try:
            parsed_cleanly = analyze_js(data, suffix, sink)
        except RecursionError:
            result.issue = FileIssue(file=rel, reason="expressions nested too deeply to analyze; skipped")
            return result
        if not parsed_cleanly:
            result.issue = FileIssue(file=rel, reason="syntax errors; calls outside the broken parts are reported")
    else:
        return result
    result.findings = sink.findings
    return result


def analyze_files(root: Path, files: list[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> ScanResult:
    """Analyze `files` (relative to `root`); a file that cannot be read is reported, never fatal."""
    out = ScanResult(root=str(root))
    for rel in files:
        try:
            with open(root / rel, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            out.issues.append(FileIssue(file=rel, reason=f"unreadable: {exc.strerror}"))
            continue
        if len(data) > max_bytes:
            out.issues.append(FileIssue(file=rel, reason=f"skipped: larger than {max_bytes} bytes"))
            continue
        result = analyze_source(rel, data)
        out.files_scanned += 1
        out.findings.extend(result.findings)
        if result.issue is not None:
            out.issues.append(result.issue)
    return out


def check_root(path: str | Path) -> Path:
    """The folder to analyze, or a clear error saying what is wrong with PATH."""
    root = Path(path).expanduser()
    if not root.exists():
        raise InvalidRequest(f"path to analyze does not exist: {root}",
                             hint="pass the folder holding the application's source, e.g. `shiftover analyze ./app`")
    if not root.is_dir():
        raise InvalidRequest(f"path to analyze is not a folder: {root}",
                             hint="pass the application's source folder, not a single file")
    return root.resolve()


def batches(files: list[str], size: int) -> list[list[str]]:
    return [files[i:i + size] for i in range(0, len(files), size)]


def analyze_path(path: str | Path, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = DEFAULT_EXCLUDES,
                 max_bytes: int = DEFAULT_MAX_BYTES, effort: EffortModel | None = None) -> Analysis:
    """The whole analysis without Prefect: walk, scan, plan (what `--no-prefect` and the benchmark run)."""
    root = check_root(path)
    walked = list_sources(root, include=include, exclude=exclude, max_bytes=max_bytes)
    scan = analyze_files(root, walked.files, max_bytes=max_bytes)
    scan.issues[:0] = walked.issues
    return build_analysis(scan, effort)


def write_analysis(analysis: Analysis, output: Path) -> Path:
    """Write the JSON report atomically (a reader never sees half a file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(analysis.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(output)
    return output
