"""Immediate migrations between PostgreSQL, SQLite, Firestore (emulator) and MongoDB (mongomock unless MONGODB_URL),
compared value by value; the flatten mapping (documents → table) and its dry run; and the round trip
PostgreSQL → Firestore → MongoDB → SQLite → PostgreSQL ending equal to the start.

Documented key change: Firestore document ids are strings, so a record's key reads back as "42" there and as 42 again
on every engine with typed keys (the column keeps its type in `_shiftover_schemas`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, Record
from shiftover.adapters.errors import ConfigInvalid, CutoverBlocked
from shiftover.adapters.registry import open_adapter
from shiftover.control.store import ControlStore
from shiftover.flows.migrate import migrate
from tests.helpers import all_records, assert_same_records, config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

ITEMS = CollectionSchema("items", (
    Column("id", "integer", False), Column("name", "text"), Column("amount", "decimal", True, 38, 9),
    Column("ratio", "float"), Column("active", "boolean"), Column("at", "timestamp"), Column("day", "date"),
    Column("doc", "json"), Column("blob", "bytes"),
), ("id",))
BIG = Decimal("12345678901234567890.123456789")
ZONES = [dt.timezone(dt.timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (5, 30), (-8, 0), (9, 0), (-3, -30))]


def item_rows(n: int = 240) -> list[Record]:
    rows = []
    for i in range(1, n + 1):
        odd = i % 7 == 0
        rows.append({
            "id": i,
            "name": None if odd else f"Zoë Ødegaard 李 №{i} 🍷",
            "amount": None if i % 11 == 0 else (BIG if i % 5 == 0 else Decimal(i) / 8 - 3),
            "ratio": None if odd else i / 3,
            "active": None if i % 13 == 0 else i % 2 == 0,
            "at": None if odd else dt.datetime(2024, 2, 29, 23, 59, 58, 123456 + i, tzinfo=ZONES[i % 5]),
            "day": dt.date(2024, 1, 1) + dt.timedelta(days=i),
            "doc": None if i % 9 == 0 else {"tags": ["a", "ü", None], "n": i, "x": 1.5,
                                           "deep": {"city": "Kraków", "zip": None, "ok": True}},
            "blob": None if odd else bytes([i % 256, 0, 255]),
        })
    return rows


def provider(kind: str, env: dict[str, Any]) -> dict[str, Any]:
    if kind == "postgresql":
        return {"kind": "postgresql", "url": env["pg"]}
    if kind == "postgresql2":
        return {"kind": "postgresql", "url": env["pg2"]}
    if kind == "sqlite":
        return {"kind": "sqlite", "url": "sqlite:///lite.db"}
    if kind == "firestore":
        return {"kind": "firestore", "url": f"firestore://{env['fs'].project}",
                "options": {"emulator_host": env["fs"].host}}
    mongo = env["mongo"]
    return {"kind": "mongodb", "url": mongo.url, **({"options": {"database": mongo.database}} if mongo.real else {})}


@pytest.fixture
def env(pg_url: str, pg_url2: str, firestore_emulator, mongo_target) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"pg": pg_url, "pg2": pg_url2, "fs": firestore_emulator, "mongo": mongo_target}


def _params(cfg_path: Path, source: str, target: str, **kw: Any) -> dict[str, Any]:
    return dict(source=source, target=target, config_path=str(cfg_path), chunk_rows=70, batch_size=40, **kw)


def _by_key(rows: list[Record]) -> dict[str, Any]:
    """Records by their key as text, the key itself left out: keys compare by value across the Firestore change."""
    return {canonical.number_text(r["id"]) if not isinstance(r["id"], str) else r["id"]:
            canonical.canonical({k: v for k, v in r.items() if k != "id"}) for r in rows}


def assert_same_values(src_rows: list[Record], dst_rows: list[Record], *, target_kind: str) -> None:
    want, got = _by_key(src_rows), _by_key(dst_rows)
    assert len(dst_rows) == len(src_rows) and want.keys() == got.keys()
    for key in want:
        assert want[key] == got[key], f"record {key}: {want[key]} != {got[key]}"
    key_type = str if target_kind == "firestore" else int
    assert {type(r["id"]) for r in dst_rows} == {key_type}


PAIRS = [("postgresql", "firestore"), ("firestore", "postgresql"), ("postgresql", "mongodb"), ("mongodb", "sqlite"),
         ("sqlite", "firestore"), ("firestore", "mongodb")]


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_migration_between_kinds_keeps_every_value(tmp_path: Path, env: dict[str, Any], source: str,
                                                    target: str) -> None:
    cfg_path = write_config(tmp_path, {"src": {**provider(source, env), "role": "primary"},
                                       "dst": provider(target, env)})
    cfg = config(cfg_path)
    rows = item_rows()
    with open_adapter(cfg, "src") as src:
        src.create_collection(ITEMS)
        src.upsert("items", rows)
    report = migrate(**_params(cfg_path, "src", "dst"))
    assert report.status == "switched"
    assert [(c.name, c.source_rows, c.target_rows, c.digests_equal) for c in report.collections] == [
        ("items", 240, 240, True)]
    assert all(e.success for e in report.expectations)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        assert_same_values(all_records(src, "items"), all_records(dst, "items"), target_kind=target)
        assert [(c.name, c.type) for c in dst.schema("items").columns] == [(c.name, c.type) for c in ITEMS.columns]
    pointer = ControlStore(cfg.control.url.get_secret_value()).pointer()
    assert (pointer.provider, pointer.epoch) == ("dst", 2)


def test_round_trip_through_every_kind_ends_equal_to_the_start(tmp_path: Path, env: dict[str, Any]) -> None:
    hops = ["postgresql", "firestore", "mongodb", "sqlite", "postgresql2"]
    cfg_path = write_config(tmp_path, {k: {**provider(k, env), **({"role": "primary"} if i == 0 else {})}
                                       for i, k in enumerate(hops)})
    cfg = config(cfg_path)
    with open_adapter(cfg, "postgresql") as start:
        start.create_collection(ITEMS)
        start.upsert("items", item_rows())
    for source, target in zip(hops, hops[1:], strict=False):
        report = migrate(**_params(cfg_path, source, target))
        assert report.status == "switched", (source, target, report.error)
        assert report.collections[0].digests_equal is True
    with open_adapter(cfg, "postgresql") as start, open_adapter(cfg, "postgresql2") as end:
        assert assert_same_records(start, end, "items") == 240
        assert end.schema("items").key == ("id",)
        assert [(c.name, c.type) for c in end.schema("items").columns] == [(c.name, c.type) for c in ITEMS.columns]
        assert end.get("items", (5,))["amount"] == BIG
    assert ControlStore(cfg.control.url.get_secret_value()).pointer().provider == "postgresql2"


def _seed_native_firestore(fs: Any) -> list[dict[str, Any]]:
    """Documents an app wrote itself (no schema stored): nested maps, a nested timestamp, missing fields."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(project=fs.project, credentials=AnonymousCredentials())
    client._emulator_host = fs.host
    docs = []
    for i in range(1, 61):
        doc: dict[str, Any] = {"email": f"user{i}@exämple.com", "age": i,
                               "joined": dt.datetime(2023, 5, 1, 12, 0, 0, i, tzinfo=dt.timezone.utc)}
        if i % 4:
            doc["address"] = {"city": None if i % 10 == 0 else f"Łódź-{i % 3}", "zip": f"{i:05d}",
                              "geo": {"lat": 51.75, "since": dt.datetime(2020, 1, i % 28 + 1, tzinfo=dt.timezone.utc)}}
        docs.append(doc)
    batch = client.batch()
    for i, doc in enumerate(docs, 1):
        batch.set(client.collection("users").document(f"u{i:03d}"), doc)
    batch.commit()
    client.close()
    return docs


def test_flatten_mapping_documents_to_table_with_dry_run(tmp_path: Path, env: dict[str, Any]) -> None:
    mappings = {"users": {"flatten": ["address.city", "address.geo.lat"], "columns": {"address.geo.lat": "lat"}}}
    cfg_path = write_config(tmp_path, {"fs": {**provider("firestore", env), "role": "primary"},
                                       "pg": provider("postgresql", env)}, migration={"mappings": mappings})
    docs = _seed_native_firestore(env["fs"])
    dry = migrate(**_params(cfg_path, "fs", "pg", dry_run=True))
    assert dry.status == "dry-run"
    assert "mapping users: nested field address.city → column address_city (text)" in dry.notes
    assert "mapping users: nested field address.geo.lat → column lat (float)" in dry.notes
    assert any(n.startswith("mapping users: JSON column(s) address") for n in dry.notes)
    cfg = config(cfg_path)
    with open_adapter(cfg, "pg") as pg:
        assert pg.collections() == []  # the dry run changed nothing

    report = migrate(**_params(cfg_path, "fs", "pg"))
    assert report.status == "switched" and report.collections[0].digests_equal is True
    with open_adapter(cfg, "pg") as pg:
        schema = pg.schema("users")
        assert schema.names == ["id", "address", "address_city", "lat", "age", "email", "joined"]
        assert [schema.column(c).type for c in ("id", "address", "address_city", "lat")] == [
            "text", "json", "text", "float"]
        rows = {r["id"]: r for r in all_records(pg, "users")}
    assert len(rows) == 60
    for i, doc in enumerate(docs, 1):
        row = rows[f"u{i:03d}"]
        assert (row["email"], row["age"], row["joined"]) == (doc["email"], doc["age"], doc["joined"])
        if "address" not in doc:
            assert (row["address"], row["address_city"], row["lat"]) == (None, None, None)
            continue
        address = doc["address"]
        assert row["address_city"] == address["city"] and row["lat"] == 51.75
        assert row["address"] == {"zip": address["zip"], "geo": {"since": address["geo"]["since"].isoformat()}}


def test_mapping_mistakes_are_configuration_errors(tmp_path: Path, env: dict[str, Any]) -> None:
    bad_path = {"users": {"flatten": ["address"]}}
    with pytest.raises(ConfigInvalid, match="migration.mappings.users.flatten") as info:
        write_config(tmp_path, {"fs": provider("firestore", env)}, migration={"mappings": bad_path})
        config(tmp_path / "backends.yaml")
    assert info.value.code == "BACKEND_002"
    cfg_path = write_config(tmp_path, {"fs": {**provider("firestore", env), "role": "primary"},
                                       "pg": provider("postgresql", env)},
                            migration={"mappings": {"users": {"flatten": ["adress.city"]}}})
    _seed_native_firestore(env["fs"])
    with pytest.raises(Exception) as err:
        migrate(**_params(cfg_path, "fs", "pg", dry_run=True))
    assert "BACKEND_002" in str(err.value) and "no field 'adress'" in str(err.value)


def test_extra_target_documents_block_the_cutover(tmp_path: Path, env: dict[str, Any]) -> None:
    """Keys change type on the way to Firestore, so the copy upserts.

    A stray document already there must fail the gate."""
    cfg_path = write_config(tmp_path, {"src": {**provider("postgresql", env), "role": "primary"},
                                       "dst": provider("firestore", env)})
    cfg = config(cfg_path)
    with open_adapter(cfg, "src") as src, open_adapter(cfg, "dst") as dst:
        src.create_collection(ITEMS)
        src.upsert("items", item_rows(50))
        dst.create_collection(ITEMS)
        dst.upsert("items", [{"id": "stray", "name": "not in the source"}])
    with pytest.raises(CutoverBlocked) as info:
        migrate(**_params(cfg_path, "src", "dst"))
    assert "record_counts" in str(info.value)
    assert ControlStore(cfg.control.url.get_secret_value()).pointer().provider == "src"
