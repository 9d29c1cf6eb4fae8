"""The GX suites run in a worker process; the gate gives the same answer when that process is gone."""

from __future__ import annotations

import dataclasses
import os

from shiftover.adapters.base import CollectionSchema, Column, KeyRange, RangeDigest
from shiftover.expectations import suites
from shiftover.expectations.suites import CollectionEvidence, validate

SCHEMA = CollectionSchema("orders", (Column("id", "integer"), Column("note", "text")), ("id",))
RANGES = (KeyRange(None, (700,)), KeyRange((700,), None))


def _evidence(target_digest: str) -> CollectionEvidence:
    source = [RangeDigest(RANGES[0], 700, "aa"), RangeDigest(RANGES[1], 300, "bb")]
    target = [RangeDigest(RANGES[0], 700, "aa"), RangeDigest(RANGES[1], 300, target_digest)]
    return CollectionEvidence("orders", 1000, 1000, source, target, SCHEMA, SCHEMA, "test")


def test_the_worker_process_runs_the_suites_and_names_the_range_that_differs() -> None:
    suites.prewarm()
    proc = suites._WORKER._proc
    assert proc is not None and proc.pid != os.getpid() and proc.poll() is None
    result = validate([_evidence("XX")])
    assert not result.success
    assert result.mismatched_ranges() == {"orders": ["(700 .. end]"]}
    assert {o.suite for o in result.outcomes} == {"record_counts", "integrity", "schema"}
    assert validate([_evidence("bb")]).success
    assert suites._WORKER._proc is proc  # one worker serves every validation of the process


def test_a_dead_worker_does_not_open_the_gate() -> None:
    suites.prewarm()
    dead = suites._WORKER._proc
    assert dead is not None
    dead.kill()
    dead.wait(10)
    result = validate([_evidence("XX")])  # a new worker is started, or the suites run here: the answer is the same
    assert not result.success and result.mismatched_ranges() == {"orders": ["(700 .. end]"]}
    assert validate([_evidence("bb")]).success
    assert suites._WORKER._proc is not None and suites._WORKER._proc.poll() is None


def test_each_detail_says_what_the_expectation_checked_and_found() -> None:
    details = {o.expectation: o.detail for o in validate([_evidence("bb")]).outcomes}
    assert details == {
        "expect_column_pair_values_to_be_equal(source_rows == target_rows)": "row counts equal in 1/1 collection",
        "expect_column_values_to_be_unique(collection)": "collection unique: 0 duplicates in 1 collection",
        "expect_column_pair_values_to_be_equal(source_count == target_count)": "counts equal in 2/2 key ranges",
        "expect_column_pair_values_to_be_equal(source_digest == target_digest)": "digests equal in 2/2 key ranges",
        "expect_column_values_to_not_be_null(source_digest)": "not null: 0 nulls in source_digest (2 key ranges)",
        "expect_column_pair_values_to_be_equal(source_type == target_type)": "definitions equal in 3/3 schema entries",
    }
    twice = _evidence("XX")
    nulls = dataclasses.replace(twice, source_digests=[RangeDigest(RANGES[0], 700, None),  # type: ignore[arg-type]
                                                       RangeDigest(RANGES[1], 300, "bb")])
    found = {o.expectation: (o.success, o.detail) for o in validate([twice, nulls]).outcomes}
    assert found["expect_column_values_to_be_unique(collection)"] == (
        False, "collection unique: 2 duplicates in 2 collections: orders; orders")
    assert found["expect_column_values_to_not_be_null(source_digest)"] == (
        False, "not null: 1 nulls in source_digest (4 key ranges): orders (start .. 700]")
    assert found["expect_column_pair_values_to_be_equal(source_digest == target_digest)"][1].startswith(
        "digests equal in 1/4 key ranges: ")
