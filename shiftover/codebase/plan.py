"""From findings to an ordered migration plan with an effort estimate, and the markdown report."""

from __future__ import annotations

from collections import Counter, defaultdict

from shiftover.codebase.model import Analysis, EffortModel, Finding, Plan, PlanStep, ScanResult
from shiftover.codebase.sdks import CALL_FLAGS, FLAG_TEXT, OPERATIONS, SERVICES

ARTIFACT_KEY = "codebase-analysis"  # the markdown artifact the analyze_codebase flow leaves

# How risky a flag makes a step; steps are ordered least risky first.
FLAG_RISK = {"dynamic_name": 1, "field_value": 1, "rls": 2, "batch": 2, "subcollection": 2, "rpc": 3, "raw_sql": 3,
             "transaction": 3, "realtime": 3}
# Within equal risk, services in the order they are usually moved: data first, realtime last.
SERVICE_ORDER = {s: i for i, s in enumerate(("database", "storage", "functions", "auth", "realtime"))}


def build_plan(findings: list[Finding], effort: EffortModel | None = None) -> Plan:
    effort = effort or EffortModel()
    groups: dict[tuple[str, str | None], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.service, f.collection)].append(f)
    steps = []
    for (service, collection), items in groups.items():
        flagged = sum(1 for f in items if f.needs_person)
        flags = sorted({fl for f in items for fl in f.flags})
        files = sorted({f.file for f in items})
        minutes = ((len(items) - flagged) * effort.direct_call_minutes + flagged * effort.flagged_call_minutes
                   + len(files) * effort.per_file_minutes
                   + (effort.rls_collection_minutes if "rls" in flags and collection else 0))
        risk = max((FLAG_RISK.get(fl, 1) for fl in flags), default=0)
        steps.append(PlanStep(order=0, service=service, collection=collection, calls=len(items),
                              direct=len(items) - flagged, flagged=flagged, flags=flags, files=files,
                              minutes=minutes, risk=risk))
    steps.sort(key=lambda s: (s.risk, SERVICE_ORDER.get(s.service, 9), s.collection is None, s.collection or "",
                              -s.calls))
    for i, step in enumerate(steps, 1):
        step.order = i
    flagged_total = sum(s.flagged for s in steps)
    return Plan(effort_model=effort, steps=steps, total_calls=len(findings), direct_calls=len(findings) - flagged_total,
                flagged_calls=flagged_total, files_touched=len({f.file for f in findings}),
                total_minutes=sum(s.minutes for s in steps))


def build_analysis(scan: ScanResult, effort: EffortModel | None = None) -> Analysis:
    findings = sorted(scan.findings, key=lambda f: (f.file, f.line))
    by_service: dict[str, dict[str, int]] = {}
    for f in findings:
        ops = by_service.setdefault(f.service, {})
        ops[f.operation] = ops.get(f.operation, 0) + 1
    flags = Counter(fl for f in findings for fl in f.flags)
    return Analysis(root=scan.root, files_scanned=scan.files_scanned, by_service=by_service,
                    flags=dict(sorted(flags.items())), findings=findings,
                    issues=sorted(scan.issues, key=lambda i: i.file), plan=build_plan(findings, effort))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(analysis: Analysis, *, max_rows: int = 200) -> str:
    """The report: calls by service, risk flags, the ordered plan, the calls needing a person, skipped files."""
    plan = analysis.plan
    out = [f"# Codebase analysis of `{analysis.root}`", "",
           f"{analysis.files_scanned} files scanned, **{plan.total_calls} direct provider-SDK calls** in "
           f"{plan.files_touched} files: **{plan.direct_calls} map directly** onto the unified API, "
           f"**{plan.flagged_calls} need a person**. Estimated effort: **{plan.total_hours} h** "
           f"({plan.effort_model.describe()}).", "", "## Calls by service", "",
           "| service | " + " | ".join(OPERATIONS) + " | total |", "|---|" + "---:|" * (len(OPERATIONS) + 1)]
    for service in SERVICES:
        ops = analysis.by_service.get(service, {})
        if ops:
            out.append(f"| {service} | " + " | ".join(str(ops.get(o, 0)) for o in OPERATIONS)
                       + f" | {sum(ops.values())} |")
    out += ["", "## Risk flags", ""]
    if analysis.flags:
        out += ["| flag | calls | why it matters |", "|---|---:|---|"]
        out += [f"| {fl} | {n} | {FLAG_TEXT.get(fl, '')} |" for fl, n in analysis.flags.items()]
    else:
        out.append("No risk flags: every call maps directly.")
    out += ["", "## Plan (least risky first)", "",
            "| # | service | collection | calls | direct | flagged | flags | files | minutes |",
            "|---:|---|---|---:|---:|---:|---|---|---:|"]
    for s in plan.steps:
        files = ", ".join(s.files[:5]) + (f" (+{len(s.files) - 5} more)" if len(s.files) > 5 else "")
        out.append(f"| {s.order} | {s.service} | {_cell(s.collection or '(dynamic or none)')} | {s.calls} | {s.direct}"
                   f" | {s.flagged} | {', '.join(s.flags)} | {_cell(files)} | {s.minutes:g} |")
    flagged = [f for f in analysis.findings if f.needs_person]
    out += ["", f"## Calls that need a person ({len(flagged)})", ""]
    if flagged:
        out += ["| file:line | service | operation | collection | flags | call |", "|---|---|---|---|---|---|"]
        for f in flagged[:max_rows]:
            out.append(f"| {_cell(f.file)}:{f.line} | {f.service} | {f.operation} | {_cell(f.collection or '')} | "
                       f"{', '.join(x for x in f.flags if x in CALL_FLAGS)} | `{_cell(f.call)}` |")
        if len(flagged) > max_rows:
            out.append(f"\n… {len(flagged) - max_rows} more in the JSON file.")
    if analysis.issues:
        out += ["", f"## Files not fully analyzed ({len(analysis.issues)})", ""]
        out += [f"- `{_cell(i.file)}`: {i.reason}" for i in analysis.issues[:max_rows]]
    return "\n".join(out) + "\n"
