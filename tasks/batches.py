"""Many small collections in few tasks.

An application's schema has many tables and most of them are small. A task per table costs more than its rows do:
a task run in Prefect's API, the configuration read, both adapters opened (and their connections made) and the
schemas reflected, for a table of twenty rows. So collections that fit in one chunk and hold at most `SMALL_ROWS`
rows are copied, and measured, `BUNDLE` at a time by one task with one pair of adapters. Each collection is still
copied, checkpointed and measured exactly as its own task would (tasks.migration.copy_one / measure), so resuming,
retries and the gate do not change; a retried bundle re-copies its chunks, which replace their key ranges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from prefect import task

from shiftover.adapters.base import KeyRange
from shiftover.adapters.config import load_config
from shiftover.adapters.registry import open_adapter
from shiftover.expectations.suites import CollectionEvidence
from shiftover.tasks.digests import SourceDigests, measure
from shiftover.tasks.migration import ChunkPlan, ChunkResult, CollectionPlan, copy_one
from shiftover.tasks.retry import RETRYABLE

SMALL_ROWS = 5_000  # a collection of at most this many rows, in one chunk, goes into a bundle
BUNDLE = 25  # collections per bundle
T = TypeVar("T")


def small(plan: CollectionPlan) -> bool:
    return len(plan.ranges) == 1 and plan.rows <= SMALL_ROWS


def in_bundles(items: Sequence[T]) -> list[list[T]]:
    return [list(items[i:i + BUNDLE]) for i in range(0, len(items), BUNDLE)]


def bundled(chunks: Sequence[ChunkPlan], small_collections: set[str]) -> list[ChunkPlan | list[ChunkPlan]]:
    """The chunks as work items: each chunk of a larger collection alone, the small collections' chunks in bundles."""
    alone: list[ChunkPlan | list[ChunkPlan]] = [c for c in chunks if c.collection not in small_collections]
    return alone + in_bundles([c for c in chunks if c.collection in small_collections])


@task(**RETRYABLE)
def copy_chunks(plans: Sequence[ChunkPlan]) -> list[ChunkResult]:
    """`copy_chunk` for each of `plans` (chunks of small collections between the same two providers), in order."""
    if not plans:
        return []
    config = load_config(plans[0].config_path)
    with open_adapter(config, plans[0].source) as src, open_adapter(config, plans[0].target) as dst:
        return [copy_one(config, src, dst, p) for p in plans]


@dataclass(frozen=True)
class Measurement:
    """What `measure_collection` is given for one collection."""

    collection: str
    ranges: tuple[KeyRange, ...]
    excluded: tuple[str, ...] = ()
    source_digests: SourceDigests | None = None


@task(**RETRYABLE)
def measure_collections(config_path: str, source: str, target: str,
                        items: Sequence[Measurement]) -> list[CollectionEvidence]:
    """`measure_collection` for each of `items` (small collections), in order, with one pair of adapters."""
    config = load_config(config_path)
    with open_adapter(config, source) as src, open_adapter(config, target) as dst:
        return [measure(config, src, dst, m.collection, m.ranges, m.excluded, m.source_digests) for m in items]
