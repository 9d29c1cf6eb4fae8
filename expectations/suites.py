"""The Great Expectations (GX Core 1.x) suites that gate every cutover.

- `record_counts`: per collection, the target holds as many records as the source.
- `integrity`: per collection and key range, the (count, digest) pair of the target equals the source's. The digests
  are computed beforehand in the engine where it can (PostgreSQL aggregates over each row's text) or from canonical
  records streamed in key order; GX checks the small per-range table, never the tables themselves.
- `schema`: per collection, the same columns with the same canonical types, and the same key.

A failed expectation names what differs: the collection, and for integrity the key ranges.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters.base import CollectionSchema, RangeDigest


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


def _frames(evidence: Sequence[CollectionEvidence]):  # type: ignore[no-untyped-def]
    import pandas as pd

    counts = pd.DataFrame(
        [{"collection": e.collection, "source_rows": e.source_rows, "target_rows": e.target_rows} for e in evidence],
        columns=["collection", "source_rows", "target_rows"],
    )
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
    integrity = pd.DataFrame(ranges, columns=["collection", "key_range", "source_count", "target_count",
                                              "source_digest", "target_digest"])
    schema_rows = []
    for e in evidence:
        target_cols = {c.name: c.type for c in e.target_schema.columns}
        for c in e.source_schema.columns:
            schema_rows.append({"collection": e.collection, "column": c.name, "source_type": c.type,
                                "target_type": target_cols.get(c.name, "missing")})
        schema_rows.append({"collection": e.collection, "column": "(primary key)",
                            "source_type": ",".join(e.source_schema.key), "target_type": ",".join(e.target_schema.key)})
    schema = pd.DataFrame(schema_rows, columns=["collection", "column", "source_type", "target_type"])
    return counts, integrity, schema


def prewarm() -> None:
    """Import GX in the background (it takes seconds) while the copy runs; validate() then finds it loaded."""
    threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()


def validate(evidence: Sequence[CollectionEvidence]) -> ValidationResult:
    """Run the three suites over the evidence. Imports GX lazily: it is slow to import."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("shiftover")
    counts, integrity, schema = _frames(evidence)

    plan = [
        ("record_counts", counts, ["collection"], [
            gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_rows", column_B="target_rows"),
            gx.expectations.ExpectColumnValuesToBeUnique(column="collection"),
        ]),
        ("integrity", integrity, ["collection", "key_range"], [
            gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_count", column_B="target_count"),
            gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_digest", column_B="target_digest"),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="source_digest"),
        ]),
        ("schema", schema, ["collection", "column"], [
            gx.expectations.ExpectColumnPairValuesToBeEqual(column_A="source_type", column_B="target_type"),
        ]),
    ]
    outcomes: list[ExpectationOutcome] = []
    for name, frame, index_cols, expectations in plan:
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame})
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for exp in expectations:
            suite.add_expectation(exp)
        result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                      "unexpected_index_column_names": index_cols})
        for r in result.results:
            outcomes.append(_outcome(name, r, index_cols, len(frame)))
    return ValidationResult(tuple(outcomes))


def _outcome(suite: str, r, index_cols: list[str], rows: int) -> ExpectationOutcome:  # type: ignore[no-untyped-def]
    cfg = r.expectation_config
    kwargs = cfg.kwargs
    what = cfg.type
    if "column_A" in kwargs:
        what = f"{cfg.type}({kwargs['column_A']} == {kwargs['column_B']})"
    elif "column" in kwargs:
        what = f"{cfg.type}({kwargs['column']})"
    if r.exception_info and r.exception_info.get("raised_exception"):
        return ExpectationOutcome(suite, what, False, f"could not be evaluated: {r.exception_info.get('exception_message')}",
                                  ("(evaluation error)",))
    unexpected = r.result.get("unexpected_index_list") or []
    failures = tuple(" ".join(str(u[c]) for c in index_cols) for u in unexpected if isinstance(u, dict))
    if r.success:
        detail = f"{rows} row(s) checked, all equal" if rows else "nothing to check"
    else:
        detail = f"{r.result.get('unexpected_count', len(failures))} of {rows} differ: " + "; ".join(failures[:10])
    return ExpectationOutcome(suite, what, bool(r.success), detail, failures)
