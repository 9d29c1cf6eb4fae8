"""The Firestore adapter's wire path (raw protobuf writes and reads) gives exactly what the client's public API gives:
the same Write for an upsert (merge by top-level field, server-timestamp stamp) and the same canonical values back.
The encoding tests need no server; the round trips run on the emulator."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shiftover.adapters.base import CollectionSchema, Column, KeyRange, ranges_from_boundaries
from shiftover.adapters.errors import UnsupportedValue
from shiftover.adapters.firestore import wire as fs_module
from shiftover.adapters.firestore.adapter import STAMP, FirestoreAdapter

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, float("-inf"), "", "Zoë ♥ 東京", b"", b"\x00\xff",
    Decimal("12345678901234567890.123456789"), Decimal("-0.10"), Decimal("1E+3"),
    dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=IST), dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
    dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc), dt.date(2024, 2, 29),
    {}, [], {"a": {"b": [1, {"c": None}]}, "e": {}, "l": []}, [1, "x", {"y": Decimal("2.5")}], (1, 2),
    {"__ref__": "users/u1"}, {"__geopoint__": {"latitude": 1.5, "longitude": -2.25}},
    {"@decimal": "7.5"}, {"@date": "2024-01-02"}, {"nested": {"__ref__": "a/b/c/d"}}, {1: "int key"},
]


class _IntLike(int):
    pass


def test_the_wire_path_was_verified_against_this_client_version() -> None:
    """Upgrading google-cloud-firestore fails here until the tests below are run again and VERIFIED_CLIENT updated."""
    assert fs_module.client_version() == fs_module.VERIFIED_CLIENT, (
        "the wire path uses private client internals: run tests/test_firestore_wire.py on the new client and update "
        "adapters/firestore/wire.py VERIFIED_CLIENT")
    assert fs_module.wire() is not None


@pytest.fixture
def adapter() -> FirestoreAdapter:
    a = FirestoreAdapter("wire", "firestore://wire-test", FirestoreAdapter.Options(emulator_host="127.0.0.1:9"))
    assert fs_module.wire() is not None, "this client version lacks what the wire path needs"
    return a


@pytest.mark.parametrize("value", [*VALUES, _IntLike(3)], ids=repr)
def test_put_encodes_as_the_client_does(adapter: FirestoreAdapter, value: object) -> None:
    wire = fs_module.wire()
    expected = wire.Value.pb(wire.encode_value(adapter._enc(value)))
    got = wire.Value.pb()()
    adapter._put(got, value)
    assert got == expected


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_val_decodes_as_the_client_does(adapter: FirestoreAdapter, value: object) -> None:
    wire = fs_module.wire()
    pb = wire.Value.pb(wire.encode_value(adapter._enc(value)))
    expected = adapter._dec(wire.decode_value(wire.Value.wrap(pb), adapter.client))
    got = adapter._val(pb)
    assert got == expected and type(got) is type(expected)


def test_put_refuses_what_enc_refuses(adapter: FirestoreAdapter) -> None:
    with pytest.raises(UnsupportedValue):
        adapter._put(fs_module.wire().Value.pb()(), 2**63)


def test_upsert_write_is_the_clients_merge_set(adapter: FirestoreAdapter) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP
    from google.cloud.firestore_v1.field_path import FieldPath

    for fields in ({"a": 1, "a.b": {"x": []}, "`w`": Decimal("1.5"), "n": None, "t": dt.datetime(2024, 1, 1),
                    STAMP: "overridden"}, {}, {"e": {}}):
        batch = adapter.client.batch()
        data = {f: adapter._enc(v) for f, v in fields.items()}
        data[STAMP] = SERVER_TIMESTAMP
        batch.set(adapter._ref("items", ("k1",)), data, merge=[FieldPath(f) for f in data])
        expected = getattr(batch._write_pbs[0], "_pb", batch._write_pbs[0])
        got = adapter._upsert_pb(adapter._doc_path("items", ("k1",)), fields)
        assert sorted(got.update_mask.field_paths) == sorted(expected.update_mask.field_paths)
        del got.update_mask.field_paths[:]
        del expected.update_mask.field_paths[:]
        assert got == expected


def test_doc_path_is_the_references(adapter: FirestoreAdapter) -> None:
    assert adapter._doc_path("items", ("k1",)) == adapter._ref("items", ("k1",))._document_path
    assert adapter._doc_path("users/{uid}/orders", ("u1", "o1")) == \
        adapter._ref("users/{uid}/orders", ("u1", "o1"))._document_path
    with pytest.raises(UnsupportedValue):
        adapter._doc_path("items", ("a/b",))


# -- on the emulator ---------------------------------------------------------------------------------------------------
SCHEMA = CollectionSchema("wire", (Column("id", "text", False), Column("v", "json"), Column("n", "integer")), ("id",))


@pytest.fixture
def live(firestore_emulator) -> FirestoreAdapter:  # type: ignore[no-untyped-def]
    a = FirestoreAdapter("wire", f"firestore://{firestore_emulator.project}",
                         FirestoreAdapter.Options(emulator_host=firestore_emulator.host))
    a.create_collection(SCHEMA)
    yield a
    a.close()


def test_round_trip_through_the_emulator_matches_the_public_api(live: FirestoreAdapter) -> None:
    rows = [{"id": f"k{i:03d}", "v": v, "n": i} for i, v in enumerate(VALUES)]
    live.upsert("wire", rows)
    got = live.scan("wire", limit=1000)
    for snap in live.client.collection("wire").stream():  # the public API's view of the same documents
        data = snap.to_dict()
        assert STAMP in data and isinstance(data[STAMP], dt.datetime)  # the server stamped every write
        row = next(r for r in got if r["id"] == snap.id)
        assert row == {"id": snap.id, **{f: live._dec(v) for f, v in data.items() if f != STAMP}}
    live.upsert("wire", [{"id": "k001", "n": 99}])  # merge by field: v stays
    again = live.find("wire", [])
    assert next(r for r in again if r["id"] == "k001") == {**next(r for r in got if r["id"] == "k001"), "n": 99}


def test_digests_and_boundaries_in_one_pass_match_the_generic_ones(live: FirestoreAdapter) -> None:
    from shiftover.adapters.base import Adapter

    live.upsert("wire", [{"id": f"k{i:04d}", "v": {"i": i}, "n": i} for i in range(1, 1201)])
    every = 250
    assert live.key_boundaries("wire", every) == Adapter.key_boundaries(live, "wire", every)
    ranges = ranges_from_boundaries([("k0100",), ("k0100x",), ("k0777",)]) + [KeyRange(("k0500",), ("k0600",))]
    assert live.digests("wire", ranges, batch=100) == Adapter.digests(live, "wire", ranges, batch=100)
