"""The GX suites run in a worker process; the gate gives the same answer when that process is gone."""

from __future__ import annotations

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
