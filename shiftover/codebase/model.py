"""Value types of the codebase analysis: findings per file, the scan result, and the migration plan."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shiftover.codebase.sdks import CALL_FLAGS


class Finding(BaseModel):
    """One direct call to a provider SDK."""

    file: str  # relative to the analyzed root, POSIX separators
    line: int
    sdk: str  # supabase, firebase, firebase-admin, mongodb, mongoose, sql
    service: str  # database, auth, storage, realtime, functions
    operation: str  # read, write, delete, subscribe, admin, invoke
    collection: str | None = None  # table/collection/bucket/function name when it is a literal
    call: str  # the call chain as written, shortened
    flags: list[str] = Field(default_factory=list)

    @property
    def needs_person(self) -> bool:
        """A call-level risk flag means a person decides how it maps; `rls` is costed per table instead."""
        return any(f in CALL_FLAGS for f in self.flags)


class FileIssue(BaseModel):
    """A file that was skipped or only partly understood."""

    file: str
    reason: str


class FileResult(BaseModel):
    file: str
    findings: list[Finding] = Field(default_factory=list)
    issue: FileIssue | None = None


class ScanResult(BaseModel):
    root: str
    files_scanned: int = 0
    findings: list[Finding] = Field(default_factory=list)
    issues: list[FileIssue] = Field(default_factory=list)

    def merge(self, other: ScanResult) -> None:
        self.files_scanned += other.files_scanned
        self.findings.extend(other.findings)
        self.issues.extend(other.issues)


class EffortModel(BaseModel):
    """Minutes of work per unit; the plan states the model it used."""

    direct_call_minutes: float = 5.0  # a call with a one-to-one unified-API equivalent
    flagged_call_minutes: float = 30.0  # a call with a call-level risk flag: a person has to decide
    per_file_minutes: float = 10.0  # imports, client setup, running that file's tests
    rls_collection_minutes: float = 45.0  # porting the row-level-security policies of one table

    def describe(self) -> str:
        return (f"{self.direct_call_minutes:g} min per direct-mapping call, {self.flagged_call_minutes:g} min per "
                f"flagged call, {self.per_file_minutes:g} min per file touched, {self.rls_collection_minutes:g} min "
                f"per table whose row-level-security policies must be ported")


class PlanStep(BaseModel):
    order: int
    service: str
    collection: str | None
    calls: int
    direct: int
    flagged: int
    flags: list[str]
    files: list[str]
    minutes: float
    risk: int


class Plan(BaseModel):
    effort_model: EffortModel
    steps: list[PlanStep]
    total_calls: int
    direct_calls: int
    flagged_calls: int
    files_touched: int
    total_minutes: float

    @property
    def total_hours(self) -> float:
        return round(self.total_minutes / 60, 1)


class Analysis(BaseModel):
    """What `shiftover analyze` writes to its JSON file."""

    root: str
    files_scanned: int
    by_service: dict[str, dict[str, int]]  # service -> operation -> count
    flags: dict[str, int]
    findings: list[Finding]
    issues: list[FileIssue]
    plan: Plan
