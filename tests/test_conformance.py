"""The adapter contract, run against every active adapter: memory, sqlite, postgresql, firestore (the emulator) and
mongodb (mongomock, or the real server when MONGODB_URL is set).

Keys are zero-padded strings, so key order is the same everywhere (Firestore document ids are strings). Every test
compares what an adapter returns with the canonical records themselves (`canonical.encode` / `record_hash`), so a
provider that passes agrees with every other one, digests included.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, CollectionSchema, Column, Filter, KeyRange, matches, ranges_from_boundaries
from shiftover.adapters.errors import BackendError, CollectionNotFound, InvalidRequest, WriteFrozen
from shiftover.adapters.query import like_regex
from shiftover.adapters.registry import adapter_class

PROVIDERS = ["memory", "sqlite", "postgresql", "supabase", "firestore", "mongodb"]
UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

SCHEMA = CollectionSchema(
    "items",
    (
        Column("id", "text", False), Column("name", "text"), Column("qty", "integer"), Column("price", "decimal"),
        Column("ratio", "float"), Column("active", "boolean"), Column("at", "timestamp"), Column("day", "date"),
        Column("doc", "json"), Column("blob", "bytes"), Column("updated_at", "timestamp"),
    ),
    ("id",),
)


def record(i: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"k{i:04d}",
        "name": None if i % 5 == 0 else f"Zoë ♥ 東京 {i}",
        "qty": i % 7,
        "price": Decimal("12345678901234567890.123456789") if i % 4 == 0 else Decimal(i) / 8,
        "ratio": None if i % 3 == 0 else i / 3,
        "active": i % 2 == 0,
        "at": dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=IST) + dt.timedelta(seconds=i, microseconds=i),
        "day": dt.date(2024, 2, i % 28 + 1),
        "doc": {"tags": ["a", "ü", i], "nested": {"n": None, "ok": True, "x": 1.5}} if i % 6 else None,
        "blob": bytes([0, i % 256, 255]) if i % 2 else None,
        "updated_at": dt.datetime(2024, 1, 1, tzinfo=UTC),
        **extra,
    }


RECORDS = [record(i) for i in range(1, 41)]


def enc(rows: list[dict[str, object]]) -> list[bytes]:
    return [canonical.encode(r) for r in rows]


def open_provider(kind: str, request: pytest.FixtureRequest, tmp_path) -> Adapter:  # type: ignore[no-untyped-def]
    options: dict[str, object] = {}
    if kind == "memory":
        url = "memory://conformance"
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
    elif kind in ("postgresql", "supabase"):  # Supabase's data plane is its PostgreSQL (no Auth/Storage API here)
        url = request.getfixturevalue("pg_url")
    elif kind == "firestore":
        emulator = request.getfixturevalue("firestore_emulator")
        url, options = f"firestore://{emulator.project}", {"emulator_host": emulator.host}
    else:
        target = request.getfixturevalue("mongo_target")
        url, options = target.url, {"database": target.database}
    cls = adapter_class(kind)
    return cls(f"conf-{kind}", url, cls.Options.model_validate(options))


@pytest.fixture(params=PROVIDERS)
def adapter(request: pytest.FixtureRequest, tmp_path) -> Iterator[Adapter]:  # type: ignore[no-untyped-def]
    with open_provider(request.param, request, tmp_path) as a:
        yield a


@pytest.fixture
def loaded(adapter: Adapter) -> Adapter:
    adapter.create_collection(SCHEMA)
    assert adapter.upsert("items", RECORDS) == len(RECORDS)
    return adapter


def keys(rows: list[dict[str, object]]) -> list[str]:
    return [str(r["id"]) for r in rows]


# -- catalogue --------------------------------------------------------------------------------------------------------
def test_create_list_drop_collection(adapter: Adapter) -> None:
    adapter.create_collection(SCHEMA)
    adapter.create_collection(SCHEMA)  # idempotent
    assert "items" in adapter.collections()
    assert adapter.count("items") == 0
    schema = adapter.schema("items")
    assert schema.key == ("id",)
    assert {c.name: c.type for c in schema.columns} == {c.name: c.type for c in SCHEMA.columns}
    adapter.drop_collection("items")
    assert "items" not in adapter.collections()
    with pytest.raises(CollectionNotFound):
        adapter.schema("items")


def test_missing_collection_is_reported(adapter: Adapter) -> None:
    with pytest.raises(CollectionNotFound):
        adapter.count("nothing_here")
    with pytest.raises(CollectionNotFound):
        adapter.scan("nothing_here")


def test_probe_round_trip(adapter: Adapter) -> None:
    result = adapter.probe(canary=True)
    assert result.ok, result.error
    assert {"read", "write", "delete"} <= set(result.checks)
    assert result.latency_ms > 0


# -- records ----------------------------------------------------------------------------------------------------------
def test_values_round_trip_exactly(loaded: Adapter) -> None:
    """Non-ASCII text, NULLs, 29-digit decimals, zoned timestamps with microseconds, dates, bytes, nested maps."""
    rows = loaded.scan("items", limit=100)
    assert enc(rows) == enc(RECORDS)
    big = loaded.get("items", ("k0004",))
    assert big is not None
    assert big["price"] == Decimal("12345678901234567890.123456789") and isinstance(big["price"], Decimal)
    assert big["at"] == RECORDS[3]["at"]
    assert big["name"] == "Zoë ♥ 東京 4" and big["doc"]["tags"] == ["a", "ü", 4]
    assert loaded.get("items", ("k0005",))["name"] is None


def test_crud(loaded: Adapter) -> None:
    assert loaded.count("items") == 40
    assert loaded.get("items", ("k0999",)) is None
    changed = loaded.update("items", ("k0007",), {"name": "seven", "qty": 70})
    assert changed["name"] == "seven"
    got = loaded.get("items", ("k0007",))
    assert got is not None and got["qty"] == 70 and got["price"] == RECORDS[6]["price"]
    loaded.upsert("items", [{"id": "k0008", "name": "partial"}])  # upsert merges the given fields
    got = loaded.get("items", ("k0008",))
    assert got is not None and got["name"] == "partial" and got["qty"] == RECORDS[7]["qty"]
    assert loaded.delete("items", [("k0007",), ("k0999",)]) == 1
    assert loaded.get("items", ("k0007",)) is None
    assert loaded.count("items") == 39
    with pytest.raises(InvalidRequest):
        loaded.update("items", ("k0999",), {"name": "x"})


FILTERS = [
    [Filter("qty", "eq", 3)],
    [Filter("qty", "ne", 3)],
    [Filter("qty", "lt", 2)],
    [Filter("qty", "lte", 2)],
    [Filter("qty", "gt", 4)],
    [Filter("qty", "gte", 4)],
    [Filter("qty", "in", [1, 5])],
    [Filter("name", "eq", None)],
    [Filter("name", "eq", "Zoë ♥ 東京 12")],
    [Filter("id", "gt", "k0030")],
    [Filter("qty", "gte", 2), Filter("qty", "lt", 5)],
    [Filter("active", "eq", True), Filter("qty", "in", [0, 2, 4])],
    # NULLs: comparisons never match them (SQL's rule); is / is_not test for them
    [Filter("name", "is", None)],
    [Filter("name", "is_not", None)],
    [Filter("name", "ne", None)],
    [Filter("ratio", "ne", 1.0)],
    [Filter("ratio", "lt", 5)],
    [Filter("ratio", "in", [4 / 3, None, 2.0])],
    [Filter("doc", "is", None), Filter("qty", "gte", 3)],
    # patterns: % and _, case, non-ASCII letters, escapes
    [Filter("name", "like", "Zoë ♥ 東京 1_")],
    [Filter("name", "like", "%京 3%")],
    [Filter("name", "like", "zoë%")],  # case-sensitive: nothing
    [Filter("name", "ilike", "ZOË ♥ 东京%")],  # 东 is not 東: nothing
    [Filter("name", "ilike", "zOË%2")],
    [Filter("name", "like", "%\\%%")],  # a literal %: nothing
    [Filter("name", "ilike", "%♥%"), Filter("qty", "gt", 4)],
    # ranges on text, decimals, dates and timestamps; the key
    [Filter("name", "gt", "Zoë ♥ 東京 3")],
    [Filter("price", "gt", Decimal("2.5"))],
    [Filter("price", "lte", Decimal("1.125")), Filter("price", "gte", Decimal("0.5"))],
    [Filter("day", "lt", dt.date(2024, 2, 6))],
    [Filter("at", "gte", dt.datetime(2024, 3, 1, 7, 0, 30, tzinfo=UTC))],
    [Filter("id", "in", ["k0003", "k0007", "k0999"])],
    [Filter("id", "lte", "k0004"), Filter("name", "is_not", None)],
]


@pytest.mark.parametrize("where", FILTERS, ids=lambda w: "&".join(f"{f.field}-{f.op}" for f in w))
def test_filters(loaded: Adapter, where: list[Filter]) -> None:
    got = loaded.find("items", where)
    expected = [r for r in RECORDS if matches(r, where)]
    assert sorted(enc(got)) == sorted(enc(expected))
    assert loaded.count_matching("items", where) == len(expected)


def test_order_and_limit(loaded: Adapter) -> None:
    got = loaded.find("items", order_by=[("qty", "desc"), ("id", "asc")], limit=7)
    expected = sorted(RECORDS, key=lambda r: (-r["qty"], r["id"]))[:7]
    assert keys(got) == keys(expected)
    got = loaded.find("items", [Filter("active", "eq", False)], order_by=[("id", "desc")], limit=3)
    assert keys(got) == ["k0039", "k0037", "k0035"]
    assert len(loaded.find("items", limit=5)) == 5


PINNED = [  # what the semantics of adapters/query.py give on RECORDS, counted by hand
    ([Filter("name", "is", None)], 8),  # i % 5 == 0
    ([Filter("name", "eq", None)], 8),
    ([Filter("name", "is_not", None)], 32),
    ([Filter("ratio", "ne", 1.0)], 27),  # NULL ratios (i % 3 == 0) do not match ne
    ([Filter("ratio", "lt", 5)], 10),  # i < 15 and i % 3 != 0
    ([Filter("ratio", "in", [4 / 3, None, 5 / 3])], 2),  # i == 4, 5; None in a list matches nothing
    ([Filter("name", "like", "Zoë ♥ 東京 1_")], 8),  # 11..19 and not 10, 15
    ([Filter("name", "like", "zoë%")], 0),
    ([Filter("name", "ilike", "zOË%2")], 4),  # 2, 12, 22, 32
    ([Filter("name", "like", "%\\%%")], 0),
]


@pytest.mark.parametrize(("where", "count"), PINNED, ids=lambda w: repr(w))
def test_filter_semantics_pinned(loaded: Adapter, where: list[Filter], count: int) -> None:
    assert len(loaded.find("items", where)) == count
    assert loaded.count_matching("items", where) == count


def test_like_patterns_translate_exactly() -> None:
    assert like_regex("a_b%\\%\\_x.", fold=False) == "^a.b.*%_x\\.$"
    assert like_regex("Ëa", fold=True) == "^[ëË][aA]$"


def test_nulls_sort_first_ascending_and_last_descending(loaded: Adapter) -> None:
    got = loaded.find("items", order_by=[("name", "asc"), ("id", "asc")], limit=9)
    assert keys(got) == ["k0005", "k0010", "k0015", "k0020", "k0025", "k0030", "k0035", "k0040", "k0001"]
    got = loaded.find("items", order_by=[("ratio", "desc"), ("id", "desc")])
    assert keys(got)[:2] == ["k0040", "k0038"] and keys(got)[-3:] == ["k0009", "k0006", "k0003"]
    got = loaded.find("items", [Filter("qty", "eq", 0)], order_by=[("price", "desc")])
    assert keys(got) == ["k0028", "k0035", "k0021", "k0014", "k0007"]  # 28: the 29-digit decimal


def test_offset_and_limit(loaded: Adapter) -> None:
    by_id = [("id", "asc")]
    assert keys(loaded.find("items", order_by=by_id, offset=5, limit=3)) == ["k0006", "k0007", "k0008"]
    assert keys(loaded.find("items", order_by=by_id, offset=37)) == ["k0038", "k0039", "k0040"]
    assert loaded.find("items", order_by=by_id, offset=40, limit=5) == []
    odd = [Filter("active", "eq", False)]
    assert keys(loaded.find("items", odd, order_by=[("id", "desc")], offset=2, limit=2)) == ["k0035", "k0033"]
    named = [Filter("name", "ilike", "%東京%")]  # filtered after reading on some providers: the window still holds
    assert keys(loaded.find("items", named, order_by=by_id, offset=3, limit=3)) == ["k0004", "k0006", "k0007"]
    pages = [keys(loaded.find("items", order_by=by_id, offset=o, limit=15)) for o in (0, 15, 30)]
    assert [k for p in pages for k in p] == keys(RECORDS)
    with pytest.raises(InvalidRequest):
        loaded.find("items", offset=-1)


def test_update_and_delete_by_query(loaded: Adapter) -> None:
    threes = [Filter("qty", "eq", 3)]
    expected = [r["id"] for r in RECORDS if r["qty"] == 3]
    assert loaded.update_where("items", threes, {"name": "three", "ratio": None}) == len(expected)
    got = loaded.find("items", [Filter("name", "eq", "three")])
    assert sorted(keys(got)) == expected and all(r["ratio"] is None and r["qty"] == 3 for r in got)
    assert loaded.get("items", ("k0004",))["name"] == "Zoë ♥ 東京 4"  # the others are untouched
    assert loaded.update_where("items", [Filter("name", "like", "nobody%")], {"name": "x"}) == 0
    with pytest.raises(InvalidRequest):
        loaded.update_where("items", threes, {"id": "k9999"})

    doomed = [Filter("active", "eq", False), Filter("qty", "gte", 4)]
    gone = [r["id"] for r in RECORDS if not r["active"] and r["qty"] >= 4]
    assert loaded.delete_where("items", doomed) == len(gone)
    assert loaded.count("items") == 40 - len(gone)
    assert all(loaded.get("items", (k,)) is None for k in gone)
    assert loaded.delete_where("items", [Filter("name", "ilike", "THREE")]) == len(
        [k for k in expected if k not in gone])
    assert loaded.count_matching("items", [Filter("qty", "eq", 3)]) == 0


def test_raw_sql(loaded: Adapter) -> None:
    if not loaded.capabilities.raw_sql:
        with pytest.raises(InvalidRequest) as info:
            loaded.sql("select 1")
        assert info.value.code == "BACKEND_014"
        pytest.skip(f"{loaded.kind} does not run SQL")
    hostile = "x'); DROP TABLE items; --"
    got = loaded.sql("SELECT id, qty FROM items WHERE qty = :q AND id <> :bad ORDER BY id", {"q": 6, "bad": hostile})
    assert [r["id"] for r in got.rows] == [r["id"] for r in RECORDS if r["qty"] == 6]
    changed = loaded.sql("UPDATE items SET name = :n WHERE qty = :q", {"n": hostile, "q": 6})
    assert changed.rowcount == len(got.rows)
    assert loaded.count_matching("items", [Filter("name", "eq", hostile)]) == len(got.rows)
    assert loaded.count("items") == 40
    with pytest.raises(BackendError):
        loaded.sql("DELETE FROM items", read_only=True)
    assert loaded.count("items") == 40
    assert loaded.sql("SELECT count(*) AS n FROM items WHERE qty > :q", {"q": 3}, read_only=True).rows == [
        {"n": len([r for r in RECORDS if r["qty"] > 3])}]
    with loaded.transaction():  # inside a transaction, before its first statement
        assert loaded.sql("SELECT 1 AS one", read_only=True).rows == [{"one": 1}]
    with pytest.raises(InvalidRequest):
        loaded.sql("SELEC nonsense")


def test_batch_operations(adapter: Adapter) -> None:
    adapter.create_collection(SCHEMA)
    many = [record(i) for i in range(1, 1201)]
    assert adapter.upsert("items", many) == 1200
    assert adapter.upsert("items", many[:600]) == 600  # idempotent
    assert adapter.count("items") == 1200
    assert adapter.delete("items", [(r["id"],) for r in many[:700]]) == 700
    assert adapter.count("items") == 500
    assert keys(adapter.scan("items", limit=2)) == ["k0701", "k0702"]


def test_transactions(loaded: Adapter) -> None:
    if not loaded.capabilities.transactions:
        with pytest.raises(InvalidRequest):
            with loaded.transaction():
                pass
        pytest.skip(f"{loaded.kind} ({loaded.url.split(':')[0]}) does not offer transactions")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with loaded.transaction():
            loaded.upsert("items", [record(100)])
            loaded.delete("items", [("k0001",)])
            raise Boom
    assert loaded.get("items", ("k0100",)) is None and loaded.get("items", ("k0001",)) is not None
    with loaded.transaction():
        loaded.upsert("items", [record(100)])
        loaded.delete("items", [("k0001",)])
    assert loaded.get("items", ("k0100",)) is not None and loaded.get("items", ("k0001",)) is None


def test_resumed_scans(loaded: Adapter) -> None:
    pages, after = [], None
    while rows := loaded.scan("items", after=after, limit=7):
        pages.append(keys(rows))
        after = (rows[-1]["id"],)
    assert [k for page in pages for k in page] == keys(RECORDS)
    assert [len(p) for p in pages] == [7, 7, 7, 7, 7, 5]
    assert keys(loaded.scan("items", after=("k0010",), until=("k0013",))) == ["k0011", "k0012", "k0013"]
    assert keys(loaded.scan("items", until=("k0002",))) == ["k0001", "k0002"]
    assert loaded.scan("items", after=("k0040",)) == []
    bounds = loaded.key_boundaries("items", 15)
    assert bounds == [("k0015",), ("k0030",)]
    chunks = [keys(rows) for rng in ranges_from_boundaries(bounds) for rows in loaded.scan_range("items", rng, batch=4)]
    assert [k for c in chunks for k in c] == keys(RECORDS)


def test_changes_since_watermark(adapter: Adapter) -> None:
    adapter.create_collection(SCHEMA)
    adapter.upsert("items", [record(i, updated_at=dt.datetime.now(UTC)) for i in range(1, 6)])
    time.sleep(0.05)
    mark = dt.datetime.now(UTC)
    time.sleep(0.05)
    adapter.upsert("items", [record(i, updated_at=dt.datetime.now(UTC)) for i in (3, 8, 9)])
    changed = adapter.changes("items", since=mark)
    assert sorted(keys(changed)) == ["k0003", "k0008", "k0009"]
    everything = keys(adapter.changes("items", since=None))
    assert sorted(everything) == [f"k{i:04d}" for i in (1, 2, 3, 4, 5, 8, 9)]
    assert set(everything[-3:]) == {"k0003", "k0008", "k0009"}  # oldest first
    assert len(adapter.changes("items", since=None, limit=2)) == 2


# -- integrity --------------------------------------------------------------------------------------------------------
def test_digests_equal_the_canonical_ones(loaded: Adapter) -> None:
    """Each provider's digest equals the one computed from the canonical records, so all providers agree."""
    ranges = [KeyRange(None, ("k0010",)), KeyRange(("k0010",), ("k0033",)), KeyRange(("k0033",), None)]
    expected = []
    for rng in ranges:
        inside = [r for r in RECORDS if rng.contains((r["id"],))]
        expected.append((len(inside), canonical.combine(sum(canonical.record_hash(r) for r in inside))))
    assert [(d.count, d.digest) for d in loaded.digests("items", ranges, batch=6)] == expected
    loaded.update("items", ("k0020",), {"at": RECORDS[19]["at"] + dt.timedelta(microseconds=1)})
    after = loaded.digests("items", ranges)
    assert after[1].digest != expected[1][1] and (after[0].digest, after[2].digest) == (expected[0][1], expected[2][1])


def test_digest_sees_the_last_digit_of_a_large_decimal(loaded: Adapter) -> None:
    before = loaded.digests("items", [KeyRange(None, None)])
    loaded.update("items", ("k0020",), {"price": Decimal("12345678901234567890.123456788")})
    assert loaded.digests("items", [KeyRange(None, None)])[0].digest != before[0].digest


def test_write_freeze(loaded: Adapter) -> None:
    if not loaded.capabilities.engine_freeze:
        loaded.freeze(["items"], reason="test")  # a no-op: the router enforces freezes for this engine
        assert loaded.frozen() == []
        loaded.upsert("items", [record(50)])
        pytest.skip(f"{loaded.kind} has no engine-side write freeze; the router enforces it")
    loaded.freeze(["items"], reason="conformance")
    try:
        assert "items" in loaded.frozen()
        with pytest.raises(WriteFrozen):
            loaded.upsert("items", [record(50)])
        with pytest.raises(WriteFrozen):
            loaded.delete("items", [("k0001",)])
    finally:
        loaded.unfreeze(["items"])
    loaded.unfreeze(["items"])  # idempotent
    assert loaded.frozen() == []
    loaded.upsert("items", [record(50)])
    assert loaded.count("items") == 41


def test_errors_are_backend_errors(loaded: Adapter) -> None:
    with pytest.raises(BackendError):
        loaded.upsert("items", [{"name": "no key"}])


# -- document-store mappings (not shared by every provider) ------------------------------------------------------------
def test_firestore_native_types_and_subcollections(request: pytest.FixtureRequest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from google.cloud.firestore import DocumentReference, GeoPoint

    with open_provider("firestore", request, tmp_path) as fs:
        raw = fs.client
        raw.document("users/u1").set({"friend": raw.document("users/u2"), "home": GeoPoint(1.5, -2.25), "n": 1,
                                      "at": dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)})
        raw.document("users/u2").set({"n": 2.5, "tags": ["x", {"y": b"\x01"}]})
        for path in ("users/u1/orders/o1", "users/u1/orders/o2", "users/u2/orders/o1", "shops/s1/orders/o0"):
            raw.document(path).set({"total": len(path)})
        users = fs.schema("users")
        assert users.key == ("id",)
        assert {c.name: c.type for c in users.columns} == {
            "id": "text", "friend": "json", "home": "json", "n": "float", "at": "timestamp", "tags": "json"}
        u1 = fs.get("users", ("u1",))
        assert u1["friend"] == {"__ref__": "users/u2"}
        assert u1["home"] == {"__geopoint__": {"latitude": 1.5, "longitude": -2.25}}
        assert u1["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC) and type(u1["at"]) is dt.datetime
        fs.create_collection(CollectionSchema("copy", users.columns, ("id",)))
        fs.upsert("copy", fs.scan("users"))
        copied = raw.document("copy/u1").get().to_dict()
        assert isinstance(copied["friend"], DocumentReference) and copied["friend"].path == "users/u2"
        assert isinstance(copied["home"], GeoPoint) and copied["home"].longitude == -2.25
        assert enc(fs.scan("copy")) == enc(fs.scan("users"))

        orders = "users/{uid}/orders"
        assert fs.schema(orders).key == ("uid", "id")
        assert [(r["uid"], r["id"]) for r in fs.scan(orders)] == [("u1", "o1"), ("u1", "o2"), ("u2", "o1")]
        assert [(r["uid"], r["id"]) for r in fs.scan(orders, after=("u1", "o1"), limit=1)] == [("u1", "o2")]
        assert fs.count(orders) == 3
        fs.upsert(orders, [{"uid": "u3", "id": "o9", "total": 7}])
        assert raw.document("users/u3/orders/o9").get().to_dict()["total"] == 7
        assert [r["id"] for r in fs.find(orders, [Filter("uid", "eq", "u3")])] == ["o9"]
        assert fs.delete(orders, [("u3", "o9"), ("u1", "o1")]) == 2 and fs.count(orders) == 2
        assert raw.document("shops/s1/orders/o0").get().exists  # other parents' subcollections are not touched
        assert "copy" in fs.collections() and "users" in fs.collections()


def test_firestore_schema_override_and_id_rules(request: pytest.FixtureRequest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shiftover.adapters.errors import UnsupportedValue
    from shiftover.adapters.firestore.adapter import FirestoreAdapter

    emulator = request.getfixturevalue("firestore_emulator")
    options = FirestoreAdapter.Options(emulator_host=emulator.host, schemas={"people": {"age": "decimal"}})
    with FirestoreAdapter("fs", f"firestore://{emulator.project}", options) as fs:
        fs.client.document("people/p1").set({"age": 3})
        assert fs.schema("people").column("age").type == "decimal"
        with pytest.raises(UnsupportedValue):
            fs.upsert("people", [{"id": "a/b", "age": 1}])
        fs.upsert("people", [{"id": 42, "age": 1}])  # integer keys become string ids
        assert fs.get("people", ("42",))["age"] == 1


def test_mongo_object_ids_datetimes_and_composite_keys(request: pytest.FixtureRequest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bson import ObjectId
    from bson.decimal128 import Decimal128

    with open_provider("mongodb", request, tmp_path) as mg:
        oid = ObjectId()
        mg.db["legacy"].insert_one({"_id": oid, "owner": ObjectId(), "price": Decimal128("1.10"), "n": 1})
        schema = mg.schema("legacy")
        assert schema.key == ("_id",) and schema.column("_id").native == "mongodb:objectId"
        rec = mg.scan("legacy")[0]
        assert rec["_id"] == str(oid) and rec["price"] == Decimal("1.10") and isinstance(rec["owner"], str)
        mg.upsert("legacy", [{**rec, "n": 2}])
        assert mg.count("legacy") == 1 and mg.db["legacy"].find_one({"_id": oid})["n"] == 2

        mg.create_collection(SCHEMA)
        whole_ms = dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
        mg.upsert("items", [record(1, at=whole_ms), record(2)])
        stored = {d["_id"]: d for d in mg.db["items"].find()}
        assert isinstance(stored["k0001"]["at"], dt.datetime) and set(stored["k0002"]["at"]) == {"@datetime", "@us"}
        assert isinstance(stored["k0002"]["price"], Decimal128) and stored["k0002"]["day"] == {"@date": "2024-02-03"}
        assert enc(mg.scan("items")) == enc([record(1, at=whole_ms), record(2)])

        pairs = CollectionSchema("pairs", (Column("a", "text", False), Column("b", "integer", False),
                                           Column("v", "text")), ("a", "b"))
        mg.create_collection(pairs)
        mg.upsert("pairs", [{"a": a, "b": b, "v": f"{a}{b}"} for a in ("y", "x") for b in (2, 1, 3)])
        assert [(r["a"], r["b"]) for r in mg.scan("pairs", after=("x", 2), until=("y", 2))] == [
            ("x", 3), ("y", 1), ("y", 2)]
        assert [r["v"] for r in mg.find("pairs", [Filter("a", "eq", "y"), Filter("b", "gte", 2)])] == ["y2", "y3"]
        assert mg.delete("pairs", [("x", 1), ("x", 9)]) == 1


def test_unreachable_document_stores_fail_fast_without_secrets() -> None:
    from shiftover.adapters.errors import ConnectionTimeout
    from shiftover.adapters.firestore.adapter import FirestoreAdapter
    from shiftover.adapters.mongo.adapter import MongoAdapter

    mongo = MongoAdapter("mg", "mongodb://app:hunter22@127.0.0.1:1/db", MongoAdapter.Options(timeout_s=0.3))
    fs = FirestoreAdapter("fs", "firestore://p", FirestoreAdapter.Options(emulator_host="127.0.0.1:1", timeout_s=0.5))
    for adapter in (mongo, fs):
        with adapter:
            result = adapter.probe()
            assert not result.ok and "BACKEND_005" in (result.error or "") and "hunter22" not in (result.error or "")
            with pytest.raises(ConnectionTimeout):
                adapter.count("anything")
