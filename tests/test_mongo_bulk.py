"""The MongoDB adapter's bulk paths (mongomock, or the server at MONGODB_URL): digests from one pass over the collection
equal the generic range-by-range ones, and replace_range leaves exactly the given records in its range, whichever way
it finds the range's documents."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shiftover.adapters.base import Adapter, CollectionSchema, Column, KeyRange, ranges_from_boundaries
from shiftover.adapters.mongo.adapter import MongoAdapter


@pytest.fixture
def mongo(mongo_target) -> MongoAdapter:  # type: ignore[no-untyped-def]
    a = MongoAdapter("bulk", mongo_target.url, MongoAdapter.Options(database=mongo_target.database))
    yield a
    a.close()


def _schema(name: str, key_type: str, composite: bool = False) -> CollectionSchema:
    cols = [Column("id", key_type, False), Column("v", "json"), Column("amount", "decimal"), Column("at", "timestamp")]
    if composite:
        cols.insert(0, Column("shop", "text", False))
    return CollectionSchema(name, tuple(cols), ("shop", "id") if composite else ("id",))


def _rows(ids: list[object], shop: str | None = None) -> list[dict[str, object]]:
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return [{**({"shop": shop} if shop else {}), "id": i, "v": {"i": str(i), "l": [1, None]},
             "amount": Decimal(n) / 8, "at": base + dt.timedelta(seconds=n, microseconds=n)} for n, i in enumerate(ids)]


@pytest.mark.parametrize("key_type, ids, bounds", [
    ("integer", list(range(1, 301)), [(50,), (51,), (299,)]),
    ("text", [f"k{i:04d}" for i in range(1, 301)], [("k0050",), ("k0050a",), ("k0299",)]),
])
def test_one_pass_digests_equal_the_generic_ones(mongo: MongoAdapter, key_type: str, ids: list[object],
                                                 bounds: list[tuple[object, ...]]) -> None:
    mongo.create_collection(_schema("items", key_type))
    mongo.upsert("items", _rows(ids))
    tiled = ranges_from_boundaries(bounds)
    assert mongo.digests("items", tiled) == Adapter.digests(mongo, "items", tiled)
    assert sum(d.count for d in mongo.digests("items", tiled)) == len(ids)
    loose = [KeyRange(bounds[0], bounds[2]), KeyRange(None, bounds[1])]  # overlapping: the generic way
    assert mongo.digests("items", loose) == Adapter.digests(mongo, "items", loose)
    assert mongo.digests("items", ranges_from_boundaries([])) == Adapter.digests(
        mongo, "items", ranges_from_boundaries([]))


def test_one_pass_digests_of_composite_keys(mongo: MongoAdapter) -> None:
    mongo.create_collection(_schema("orders", "integer", composite=True))
    mongo.upsert("orders", _rows(list(range(1, 101)), "a") + _rows(list(range(1, 51)), "b"))
    ranges = ranges_from_boundaries([("a", 30), ("a", 100), ("b", 7)])
    assert mongo.digests("orders", ranges) == Adapter.digests(mongo, "orders", ranges)


@pytest.mark.parametrize("key_type, ids, rng", [
    ("integer", list(range(1, 101)), KeyRange((20,), (40,))),
    ("integer", list(range(1, 101)), KeyRange(None, (10,))),
    ("text", [f"k{i:03d}" for i in range(1, 101)], KeyRange(("k090",), None)),
])
def test_replace_range_leaves_exactly_the_given_records(mongo: MongoAdapter, key_type: str, ids: list[object],
                                                         rng: KeyRange) -> None:
    mongo.create_collection(_schema("items", key_type))
    mongo.upsert("items", _rows(ids))
    inside = [r for r in _rows(ids) if rng.contains((r["id"],))]
    kept = inside[::2]  # every other record of the range survives, changed; the others must go
    for r in kept:
        r["v"] = {"changed": True}
    for _ in range(2):  # idempotent: a re-run chunk gives the same result
        assert mongo.replace_range("items", rng, kept) == len(kept)
        rows = mongo.scan("items", limit=1000)
        assert [r for r in rows if rng.contains((r["id"],))] == kept
        assert [r for r in rows if not rng.contains((r["id"],))] == [
            r for r in _rows(ids) if not rng.contains((r["id"],))]


def test_replace_range_with_composite_keys(mongo: MongoAdapter) -> None:
    mongo.create_collection(_schema("orders", "integer", composite=True))
    mongo.upsert("orders", _rows(list(range(1, 21)), "a") + _rows(list(range(1, 21)), "b"))
    rng = KeyRange(("a", 10), ("b", 5))
    mongo.replace_range("orders", rng, [])
    left = [(r["shop"], r["id"]) for r in mongo.scan("orders", limit=1000)]
    assert left == [("a", i) for i in range(1, 11)] + [("b", i) for i in range(6, 21)]
