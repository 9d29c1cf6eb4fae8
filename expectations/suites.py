"""The Great Expectations (GX Core 1.x) suites that gate every cutover.

- `record_counts`: per collection, the target holds as many records as the source.
- `integrity`: per collection and key range, the (count, digest) pair of the target equals the source's. The digests
  are computed beforehand in the engine where it can (PostgreSQL aggregates per-row hashes) or from canonical
  records streamed in key order; GX checks the small per-range table, never the tables themselves.
- `schema`: per collection, the same columns with the same canonical types, and the same key; between two
  PostgreSQL-family providers also every application-visible object (column definitions with defaults and
  identities, constraints, indexes, triggers, policies and RLS flags, grants, views, types, sequences past every
  key) and the outcome of the app's next insert, tried on both sides in a rolled-back transaction.

A failed expectation names what differs: the collection, and for integrity the key ranges.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftover.adapters.base import CollectionSchema, RangeDigest


@dataclass(frozen=True)
class CollectionEvidence:
    """What was measured on both sides of one collection."""

    collection: str
    source_rows: int
    target_rows: int
    source_digests: Sequence[RangeDigest]
    target_digests: Sequence[RangeDigest]
    source_schema: CollectionSchema
    target_schema: CollectionSchema
    digest_method: str
    # (label, definition) of the application-visible objects (PostgreSQL-family pairs: tasks/schema.py)
    source_objects: Sequence[tuple[str, str]] = ()
    target_objects: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    expectation: str
    success: bool
    detail: str
    failures: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ValidationResult:
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    def failures(self) -> list[str]:
        return [f"{o.suite}/{o.expectation}: {f}" for o in self.outcomes if not o.success for f in o.failures]

    def mismatched_ranges(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for o in self.outcomes:
            if o.suite == "integrity" and not o.success:
                for f in o.failures:
                    coll, _, rng = f.partition(" ")
                    if rng and rng not in out.setdefault(coll, []):
                        out[coll].append(rng)
        return out


_COLUMNS = {
    "record_counts": ["collection", "source_rows", "target_rows"],
    "integrity": ["collection", "key_range", "source_count", "target_count", "source_digest", "target_digest"],
    "schema": ["collection", "column", "source_type", "target_type"],
}


def _tables(evidence: Sequence[CollectionEvidence]) -> dict[str, list[dict]]:
    """The three small tables the suites check, as plain rows (JSON-ready: they may cross to the GX worker)."""
    counts = [{"collection": e.collection, "source_rows": e.source_rows, "target_rows": e.target_rows}
              for e in evidence]
    ranges = []
    for e in evidence:
        targets = {d.range: d for d in e.target_digests}
        for s in e.source_digests:
            t = targets.get(s.range)
            ranges.append({
                "collection": e.collection, "key_range": s.range.label(),
                "source_count": s.count, "target_count": t.count if t else -1,
                "source_digest": s.digest, "target_digest": t.digest if t else "missing",
            })
    schema_rows = []
    for e in evidence:
        target_cols = {c.name: c.type for c in e.target_schema.columns}
        for c in e.source_schema.columns:
            schema_rows.append({"collection": e.collection, "column": c.name, "source_type": c.type,
                                "target_type": target_cols.get(c.name, "missing")})
        schema_rows.append({"collection": e.collection, "column": "(primary key)",
                            "source_type": ",".join(e.source_schema.key), "target_type": ",".join(e.target_schema.key)})
        theirs = dict(e.target_objects)
        mine = dict(e.source_objects)
        for label in sorted(mine.keys() | theirs.keys()):
            schema_rows.append({"collection": e.collection, "column": label, "source_type": mine.get(label, "missing"),
                                "target_type": theirs.get(label, "missing")})
    return {"record_counts": counts, "integrity": ranges, "schema": schema_rows}


def prewarm(*, yield_cpu: bool = True) -> None:
    """Start the GX worker process now (importing GX takes seconds and ~240 MB), so validate() finds it ready.
    `yield_cpu`: import at a low priority, as when the import overlaps a copy; a caller that is only waiting (the CLI
    while Prefect's API starts) passes False."""
    _WORKER.start(nice=10 if yield_cpu else 0)


def validate(evidence: Sequence[CollectionEvidence]) -> ValidationResult:
    """Run the three suites over the evidence, in the GX worker process (see `_Worker`)."""
    return _WORKER.run(_tables(evidence))


def validate_here(tables: dict[str, list[dict]]) -> ValidationResult:
    """Run the three suites in this process. GX is imported, and its context, assets and suites are built, on the first
    call only (see `_Gate`)."""
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = _Gate()
        return _GATE.run(tables)


class _Gate:
    """GX's ephemeral context with one pandas asset and one suite per table, built once per process: building them
    costs more than validating the few hundred rows of a gate, and each validation only brings new dataframes."""

    def __init__(self) -> None:
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("shiftover")
        plan: list[tuple[str, list[str], list[Any]]] = [
            ("record_counts", ["collection"], [
                gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_rows", column_B="target_rows"),
                gx.expectations.ExpectColumnValuesToBeUnique(column="collection"),
            ]),
            ("integrity", ["collection", "key_range"], [
                gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_count", column_B="target_count"),
                gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_digest", column_B="target_digest"),
                gx.expectations.ExpectColumnValuesToNotBeNull(column="source_digest"),
            ]),
            ("schema", ["collection", "column", "source_type", "target_type"], [
                gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_type", column_B="target_type"),
            ]),
        ]
        self._checks = []
        for name, index_cols, expectations in plan:
            batches = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all")
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for exp in expectations:
                suite.add_expectation(exp)
            self._checks.append((name, index_cols, batches, suite))

    def run(self, tables: dict[str, list[dict]]) -> ValidationResult:
        import pandas as pd

        outcomes: list[ExpectationOutcome] = []
        for name, index_cols, batches, suite in self._checks:
            frame = pd.DataFrame(tables[name], columns=_COLUMNS[name])
            batch = batches.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                          "unexpected_index_column_names": index_cols})
            for r in result.results:
                outcomes.append(_outcome(name, r, index_cols, len(frame)))
        return ValidationResult(tuple(outcomes))


_GATE: _Gate | None = None
_GATE_LOCK = threading.Lock()


class _Worker:
    """One long-lived child process that imports GX once and runs the suites for this process.

    GX Core is the heaviest part of the stack: importing it costs ~4 s of CPU and ~240 MB. In a child process that
    import overlaps the copy without holding this process's GIL (the copy's byte pump runs here), it is paid once per
    process (a `shiftover serve` worker validates every run with the same child), and the migration process stays
    small. Requests and answers are JSON lines over the child's stdin/stdout; the child ends when stdin closes. If the
    child cannot be started or dies, the suites run in this process instead: the gate never depends on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def start(self, nice: int = 10) -> None:
        with self._lock:
            self._spawn(nice)

    def _spawn(self, nice: int = 10) -> subprocess.Popen[str] | None:
        if os.environ.get("SHIFTOVER_GX_IN_PROCESS") == "1":
            return None
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "shiftover.expectations.suites", str(nice)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True, env=env, cwd=root, bufsize=1)
        except OSError as exc:
            logging.getLogger(__name__).warning("GX worker could not start (%s); validating in-process", exc)
            self._proc = None
        else:
            atexit.register(self._stop, self._proc)
        return self._proc

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None and proc.stdin:
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def run(self, tables: dict[str, list[dict]]) -> ValidationResult:
        with self._lock:
            proc = self._spawn()
            answer = None
            if proc is not None and proc.stdin and proc.stdout:
                try:
                    proc.stdin.write(json.dumps({"tables": tables}) + "\n")
                    proc.stdin.flush()
                    answer = proc.stdout.readline()
                except (OSError, ValueError):
                    answer = None
                if not answer:  # the child died: do not reuse it
                    self._proc = None
                    proc.kill()
        if not answer:
            if proc is not None:
                logging.getLogger(__name__).warning("GX worker ended unexpectedly; validating in-process")
            return validate_here(tables)
        reply = json.loads(answer)
        if "error" in reply:
            raise RuntimeError(f"the GX suites could not run: {reply['error']}")
        return ValidationResult(tuple(ExpectationOutcome(o["suite"], o["expectation"], o["success"], o["detail"],
                                                         tuple(o["failures"])) for o in reply["outcomes"]))


_WORKER = _Worker()


def _serve() -> None:
    """The GX worker's loop: import GX, then answer one JSON line per request until stdin closes. It may run at a lower
    priority (argv[1]: the niceness), so its import yields the CPU to the copy it overlaps; replies go to the real
    stdout, anything GX prints goes to stderr."""
    replies, sys.stdout = sys.stdout, sys.stderr
    os.nice(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    global _GATE
    _GATE = _Gate()  # the point of the worker: GX imported and set up once, before the first request,
    _GATE.run({"record_counts": [{"collection": "warm-up", "source_rows": 0, "target_rows": 0}],  # and run once
               "integrity": [], "schema": []})

    for line in sys.stdin:
        try:
            result = validate_here(json.loads(line)["tables"])
            reply: dict[str, Any] = {"outcomes": [dataclasses.asdict(o) for o in result.outcomes]}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


_UNITS = {"record_counts": ("collection", "collections"), "integrity": ("key range", "key ranges"),
          "schema": ("schema entry", "schema entries")}
_NOUNS = {"rows": "row counts", "count": "counts", "digest": "digests", "type": "definitions"}


def finding(kind: str, kwargs: dict[str, Any], suite: str, rows: int, found: int) -> str:
    """What one expectation checked and found, in words: `digests equal in 12/12 key ranges`, `collection unique: 0
    duplicates in 3 collections`, `not null: 0 nulls in source_digest (12 key ranges)`."""
    one, many = _UNITS.get(suite, ("row", "rows"))
    unit = one if rows == 1 else many
    if kind == "expect_column_pair_values_to_be_equal":
        noun = _NOUNS.get(kwargs["column_A"].removeprefix("source_"), f"{kwargs['column_A']} and {kwargs['column_B']}")
        return f"{noun} equal in {rows - found:,}/{rows:,} {unit}" if rows else f"{noun}: no {many} to compare"
    if kind == "expect_column_values_to_be_unique":
        return f"{kwargs['column']} unique: {found:,} duplicates in {rows:,} {unit}"
    if kind == "expect_column_values_to_not_be_null":
        return f"not null: {found:,} nulls in {kwargs['column']} ({rows:,} {unit})"
    return f"{kind}: {found:,} unexpected in {rows:,} {unit}"


def _outcome(suite: str, r, index_cols: list[str], rows: int) -> ExpectationOutcome:  # type: ignore[no-untyped-def]
    cfg = r.expectation_config
    kwargs = cfg.kwargs
    what = cfg.type
    if "column_A" in kwargs:
        what = f"{cfg.type}({kwargs['column_A']} == {kwargs['column_B']})"
    elif "column" in kwargs:
        what = f"{cfg.type}({kwargs['column']})"
    if r.exception_info and r.exception_info.get("raised_exception"):
        why = r.exception_info.get("exception_message")
        return ExpectationOutcome(suite, what, False, f"could not be evaluated: {why}",
                                  ("(evaluation error)",))
    unexpected = r.result.get("unexpected_index_list") or []
    failures = tuple(" ".join(str(u[c]) for c in index_cols) for u in unexpected if isinstance(u, dict))
    found = int(r.result.get("unexpected_count") or len(failures))
    detail = finding(cfg.type, kwargs, suite, rows, found)
    if not r.success and failures:
        detail += ": " + "; ".join(failures[:10]) + (f" and {len(failures) - 10:,} more" if len(failures) > 10 else "")
    return ExpectationOutcome(suite, what, bool(r.success), detail, failures)


if __name__ == "__main__":
    _serve()
