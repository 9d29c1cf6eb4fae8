"""How both sides of a migration are measured: the copy path between two engines, the digest method they agree on
(in the engine where both can, over stored values, or over canonical records in Python), and the digests of key ranges,
made on the source while a chunk copies it or read from each side when validation measures.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shiftover.adapters import canonical, mapping
from shiftover.adapters.base import Adapter, CollectionSchema, KeyRange, RangeDigest, Record
from shiftover.adapters.config import Config
from shiftover.adapters.errors import UnsupportedValue
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.userfiles import is_users_or_files
from shiftover.expectations.suites import CollectionEvidence


def copy_path(src: Adapter, dst: Adapter) -> str:
    family = src.capabilities.bulk_copy
    if not family or family != dst.capabilities.bulk_copy:
        return BATCHED
    return "binary COPY" if family == "postgresql" else f"native copy ({family})"


BATCHED = "batched upsert"  # the copy path between engines of different families: canonical records in batches


def source_hasher(shape: mapping.CollectionMapping, excluded: Sequence[str]) -> Callable[[Record], int]:
    """The per-record hash of a source record as the client-side digests see it: after the mapping to the target's
    shape, without the fields the target cannot keep."""
    if excluded:
        without = hash_without(excluded)
        return lambda r: without(shape.record(r))
    if not shape.identity:
        return lambda r: canonical.record_hash(shape.record(r))
    return canonical.record_hash


def hash_without(excluded: Sequence[str]) -> Callable[[Record], int]:
    """The canonical hash of a record without the `excluded` fields (the ones the target cannot keep)."""
    return lambda r: canonical.record_hash({k: v for k, v in r.items() if k not in excluded})


@dataclass(frozen=True)
class SourceDigests:
    """One side's per-range digests and how they were computed: only digests made the same way are compared."""

    method: str
    digests: list[RangeDigest]


def digest_method(src: Adapter, dst: Adapter, s_schema: CollectionSchema, t_schema: CollectionSchema,
                  shape: mapping.CollectionMapping, excluded: Sequence[str]) -> tuple[str, str | None]:
    """How both sides of a collection are digested: (label for the report, in-engine function or None)."""
    if _pushdown_family(src, dst, s_schema, t_schema, shape, excluded):
        found = pushdown_function(src, dst, s_schema.name, sorted(s_schema.names))
        if found is not None:
            return found[1], found[0]
    encoded = _encoded_function(src, dst, s_schema, shape, excluded)
    if encoded is not None:
        return f"{ENCODED} ({encoded})", encoded
    if excluded:
        return f"canonical records (client) without {', '.join(excluded)}", None
    if not shape.identity:
        return "canonical records (client), mapped source", None
    return "canonical records (client)", None


ENCODED = "stored values, the source encoded as SQLite stores it"


def _encoded_function(src: Adapter, dst: Adapter, s_schema: CollectionSchema, shape: mapping.CollectionMapping,
                      excluded: Sequence[str]) -> str | None:
    """Into SQLite from another engine (a batched copy): the target's stored-values digest, whose source side is made
    from the very rows the copy encodes and writes. Used only when the records keep their shape, the target table is
    declared as the SQLite adapter declares the source's schema (adapters/sqlite/rows.py), and the source's JSON
    columns hold plain JSON (so encoding a value loses nothing the canonical digest would have seen)."""
    if excluded or not shape.identity or is_users_or_files(s_schema.name) or copy_path(src, dst) != BATCHED or \
            dst.capabilities.digest_pushdown != "sqlite" or src.kind not in mapping.PLAIN_JSON_KINDS:
        return None
    return dst.encoded_method(s_schema, sorted(s_schema.names))  # type: ignore[attr-defined]


def _encoded(label: str) -> bool:
    return label.startswith(ENCODED)


def pushdown_function(src: Adapter, dst: Adapter, name: str, columns: Sequence[str]) -> tuple[str, str] | None:
    """The fastest in-engine digest function both engines apply to these columns, and its label for the report; None
    when they share none (the digests are then made on the client)."""
    theirs = dst.pushdown_methods(name, columns)
    function = next((m for m in src.pushdown_methods(name, columns) if m in theirs), None)
    return None if function is None else (function, f"in-engine ({src.capabilities.digest_pushdown}, {function})")


def measure(config: Config, src: Adapter, dst: Adapter, collection: str, ranges: Sequence[KeyRange],
            excluded: Sequence[str] = (), source_digests: SourceDigests | None = None) -> CollectionEvidence:
    """`measure_collection` with open adapters (tasks.batches measures many small collections with one pair)."""
    s_schema, t_schema = src.schema(collection), dst.schema(collection)
    shape = collection_mapping(config, src, dst, collection)
    label, function = digest_method(src, dst, s_schema, t_schema, shape, excluded)
    ready = source_digests.digests if source_digests is not None and source_digests.method == label and \
        [d.range for d in source_digests.digests] == list(ranges) else None
    with ThreadPoolExecutor(4) as pool:  # both sides at once
        if function and _encoded(label):  # the source encoded as the SQLite target stores it, the target in-engine
            columns = sorted(s_schema.names)
            halves = [h for h in (ranges[:(len(ranges) + 1) // 2], ranges[(len(ranges) + 1) // 2:]) if h]
            s_jobs = [pool.submit(_encoded_source_digests, src, dst, collection, ranges, columns)] \
                if ready is None else []
            t_jobs = [pool.submit(dst.pushdown_digests, collection, h, columns, function) for h in halves]
        elif function:  # in-engine: each side's ranges in two sessions, so the servers' cores all work
            columns = sorted(s_schema.names)
            halves = [h for h in (ranges[:(len(ranges) + 1) // 2], ranges[(len(ranges) + 1) // 2:]) if h]
            s_jobs = [pool.submit(src.pushdown_digests, collection, h, columns, function) for h in halves] \
                if ready is None else []
            t_jobs = [pool.submit(dst.pushdown_digests, collection, h, columns, function) for h in halves]
        elif ready is None or shape.reorders_keys or len(ranges) < 2:  # on the client: a thread per side
            s_jobs = [pool.submit(_client_source_digests, src, shape, collection, ranges, excluded)] \
                if ready is None else []
            t_jobs = [pool.submit(_client_target_digests, dst, shape, collection, ranges, excluded)]
        else:  # only the target left to read: two readers, each with its own adapter, share its ranges
            half = (len(ranges) + 1) // 2
            s_jobs = []
            t_jobs = [pool.submit(_client_target_digests, dst, shape, collection, ranges[:half], excluded),
                      pool.submit(_own_target_digests, config, dst.name, shape, collection, ranges[half:], excluded)]
        s_dig = ready if ready is not None else [d for job in s_jobs for d in job.result()]
        t_dig = [d for job in t_jobs for d in job.result()]
    # The ranges cover the whole key space, so their counts add up to each side's record count.
    return CollectionEvidence(collection, sum(d.count for d in s_dig), sum(d.count for d in t_dig), s_dig, t_dig,
                              s_schema if function or (shape.identity and not excluded) else shape.target,
                              t_schema, label)


def _pushdown_family(src: Adapter, dst: Adapter, s_schema: CollectionSchema, t_schema: CollectionSchema,
                     shape: mapping.CollectionMapping, excluded: Sequence[str]) -> str | None:
    """The engine family both sides compute digests in, when nothing is left out or reshaped on the way."""
    if excluded or not shape.identity or is_users_or_files(s_schema.name):
        return None
    family = src.capabilities.digest_pushdown
    # The same native types on both sides. SQLite's columns have none of their own: its method compares the
    # declared types itself (adapters/sqlite/native.py).
    untyped = family == "sqlite"
    same_types = all(c.name in t_schema.names and c.native == _native(t_schema, c.name) and (untyped or c.native)
                     for c in s_schema.columns)
    return family if family and family == dst.capabilities.digest_pushdown and same_types else None


def _encoded_source_digests(src: Adapter, dst: Adapter, collection: str, ranges: Sequence[KeyRange],
                            columns: Sequence[str], batch: int = 5000) -> list[RangeDigest]:
    """The source's ranges read and hashed as the SQLite target would store them (when no chunk made them on the way:
    a resumed run)."""
    out = []
    for rng in ranges:
        n, total = 0, 0
        for rows in src.scan_range(collection, rng, batch=batch):
            n += len(rows)
            total += dst.encoded_hash(collection, rows, columns)  # type: ignore[attr-defined]
        out.append(RangeDigest(rng, n, canonical.combine(total)))
    return out


def _client_source_digests(src: Adapter, shape: mapping.CollectionMapping, collection: str,
                           ranges: Sequence[KeyRange], excluded: Sequence[str]) -> list[RangeDigest]:
    if excluded or not shape.identity:
        return hashed_digests(src, collection, ranges, source_hasher(shape, excluded))
    return src.digests(collection, ranges)


def _own_target_digests(config: Config, target: str, shape: mapping.CollectionMapping, collection: str,
                        ranges: Sequence[KeyRange], excluded: Sequence[str]) -> list[RangeDigest]:
    with open_adapter(config, target) as dst:
        return _client_target_digests(dst, shape, collection, ranges, excluded)


def _client_target_digests(dst: Adapter, shape: mapping.CollectionMapping, collection: str,
                           ranges: Sequence[KeyRange], excluded: Sequence[str]) -> list[RangeDigest]:
    if excluded:
        return hashed_digests(dst, collection, ranges, hash_without(excluded))
    if not shape.identity:
        if shape.reorders_keys:
            return _bucketed_target_digests(dst, shape, ranges, 5000)
        return dst.digests(shape.name, ranges, batch=5000)
    return dst.digests(collection, ranges)


def hashed_digests(adapter: Adapter, name: str, ranges: Sequence[KeyRange], hasher: Callable[[Record], int],
                   batch: int = 5000) -> list[RangeDigest]:
    """(count, digest) per key range, each record hashed by `hasher` (see `source_hasher`) on the client."""
    out = []
    for rng in ranges:
        n, total = 0, 0
        for rows in adapter.scan_range(name, rng, batch=batch):
            n += len(rows)
            total += sum(hasher(r) for r in rows)
        out.append(RangeDigest(rng, n, canonical.combine(total)))
    return out


# -- shape changes between kinds of backend (adapters.mapping) ---------------------------------------------------------
def collection_mapping(config: Config, src: Adapter, dst: Adapter, name: str) -> mapping.CollectionMapping:
    """The mapping of one collection from `src` to `dst`, with the options of migration.mappings[name]."""
    if is_users_or_files(name):  # one canonical shape on every provider (shiftover.adapters.userfiles)
        return mapping.CollectionMapping(name, src.schema(name), src.schema(name))
    rules = config.migration.mappings.get(name)
    sample = src.scan(name, limit=config.migration.sample_size) if rules and rules.flatten else []
    return mapping.build(name, src.schema(name), source_kind=src.kind, target_kind=dst.kind,
                         flatten=rules.flatten if rules else (), columns=rules.columns if rules else None,
                         types=rules.types if rules else None, sample=sample)


def _bucketed_target_digests(dst: Adapter, shape: mapping.CollectionMapping, ranges: Sequence[KeyRange],
                             batch: int) -> list[RangeDigest]:
    name = shape.name
    ordered = list(ranges)
    bounds: list[Any] = [r.hi for r in ordered[:-1]]  # the inner bounds (only the last range is open above)
    counts, sums = [0] * len(ordered), [0] * len(ordered)
    stray, stray_sum = 0, 0
    key = dst.key_of(name)
    for rows in dst.scan_range(name, KeyRange(None, None), batch=batch):
        for r in rows:
            try:
                k = shape.source_key(tuple(r[c] for c in key))
                i = bisect.bisect_left(bounds, k)
            except (UnsupportedValue, TypeError):
                i = -1
            if i >= 0 and ordered[i].contains(k):
                counts[i] += 1
                sums[i] += canonical.record_hash(r)
            else:
                stray, stray_sum = stray + 1, stray_sum + canonical.record_hash(r)
    t_dig = [RangeDigest(r, c, canonical.combine(s)) for r, c, s in zip(ordered, counts, sums, strict=True)]
    if stray:
        t_dig.append(RangeDigest(KeyRange(("(keys outside the source's key space)",), None), stray,
                                 canonical.combine(stray_sum)))
    return t_dig


def _native(schema: CollectionSchema, name: str) -> str | None:
    try:
        return schema.column(name).native
    except KeyError:
        return None


def digests_equal(evidence: CollectionEvidence) -> bool:
    return [(d.count, d.digest) for d in evidence.source_digests] == [
        (d.count, d.digest) for d in evidence.target_digests]
