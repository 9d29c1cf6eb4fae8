"""Routing by configuration: backends.yaml's `services:` sends a service or a collection to a provider.

Precedence: a gradual migration's route in the control store > services.collections > services.db > the pointer.
"""

from __future__ import annotations

import sqlite3

import pytest

from shiftover.adapters.base import CollectionSchema, Column
from shiftover.adapters.config import load_config
from shiftover.adapters.errors import ConfigInvalid
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.router import Backend
from shiftover.control.store import ControlStore
from tests.fixtures_clusters import write_config

TABLES = [CollectionSchema(name, (Column("id", "integer", False), Column("v", "text")), ("id",))
          for name in ("customers", "tickets", "orders")]


def providers(tmp_path):
    return {"main": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'main.db'}", "role": "primary"},
            "side": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'side.db'}", "role": "standby",
                     "options": {"files": {"url": f"file://{tmp_path / 'side-files'}"}}},
            "spare": {"kind": "sqlite", "url": f"sqlite:///{tmp_path / 'spare.db'}", "role": "standby"}}


def configured(tmp_path, services):
    cfg = load_config(write_config(tmp_path, providers(tmp_path), services=services))
    for name in cfg.providers:
        with open_adapter(cfg, name) as adapter:
            for table in TABLES:
                adapter.create_collection(table)
    return cfg


def in_file(tmp_path, provider, table):
    """The rows as the provider's own SQLite file holds them, read without Shiftover."""
    with sqlite3.connect(tmp_path / f"{provider}.db") as conn:
        return dict(conn.execute(f"select id, v from {table} order by id").fetchall())


def test_a_collection_routed_by_services_lands_in_that_providers_file_and_is_read_back_from_it(tmp_path):
    cfg = configured(tmp_path, {"collections": {"customers": "side"}})
    with Backend(cfg) as backend:
        backend.db.insert("customers", [{"id": 1, "v": "routed"}])
        backend.db.insert("orders", [{"id": 2, "v": "pointer"}])
        assert backend.db.get("customers", 1) == {"id": 1, "v": "routed"}
        assert backend.db.find("customers", [("v", "eq", "routed")]) == [{"id": 1, "v": "routed"}]
        assert backend.db.count("orders") == 1
    assert in_file(tmp_path, "side", "customers") == {1: "routed"} and in_file(tmp_path, "main", "customers") == {}
    assert in_file(tmp_path, "main", "orders") == {2: "pointer"} and in_file(tmp_path, "side", "orders") == {}


def test_services_db_overrides_the_pointer_and_a_collection_entry_overrides_services_db(tmp_path):
    cfg = configured(tmp_path, {"db": "side", "collections": {"tickets": "spare"}})
    with Backend(cfg) as backend:
        assert backend.active == "main"  # the pointer is untouched
        backend.db.upsert("orders", [{"id": 1, "v": "db"}])
        backend.db.upsert("tickets", [{"id": 2, "v": "collection"}])
        assert backend.db.sql("select count(*) as n from orders", read_only=True).rows == [{"n": 1}]
        with backend.db.transaction() as tx:  # on services.db's provider
            tx.upsert("orders", [{"id": 3, "v": "tx"}])
    assert in_file(tmp_path, "side", "orders") == {1: "db", 3: "tx"} and in_file(tmp_path, "main", "orders") == {}
    assert in_file(tmp_path, "spare", "tickets") == {2: "collection"} and in_file(tmp_path, "side", "tickets") == {}


def test_a_switch_of_the_pointer_does_not_move_what_services_pins(tmp_path):
    cfg = configured(tmp_path, {"collections": {"customers": "main"}})
    control = ControlStore(cfg.control.url.get_secret_value())
    with Backend(cfg, control=control) as backend:
        pointer = control.ensure_pointer("main")
        control.switch(expected_epoch=pointer.epoch, provider="spare", reason="failover in a test")
        backend.db.upsert("customers", [{"id": 1, "v": "pinned"}])
        backend.db.upsert("orders", [{"id": 1, "v": "followed"}])
        assert backend.view(fresh=True).pointer.provider == "spare"
    control.close()
    assert in_file(tmp_path, "main", "customers") == {1: "pinned"}
    assert in_file(tmp_path, "spare", "orders") == {1: "followed"} and in_file(tmp_path, "main", "orders") == {}


def test_a_gradual_migrations_route_wins_over_services(tmp_path):
    cfg = configured(tmp_path, {"db": "side", "collections": {"customers": "side"}})
    control = ControlStore(cfg.control.url.get_secret_value())
    control.set_route("customers", "spare")  # what a gradual migration sets when it has moved the collection
    with Backend(cfg, control=control) as backend:
        backend.db.upsert("customers", [{"id": 5, "v": "migrated"}])
        assert backend.db.get("customers", 5) == {"id": 5, "v": "migrated"}
        control.clear_route("customers")
        assert backend.view(fresh=True).provider_for("customers") == "side"
    control.close()
    assert in_file(tmp_path, "spare", "customers") == {5: "migrated"} and in_file(tmp_path, "side", "customers") == {}


def test_storage_follows_services_storage(tmp_path):
    cfg = configured(tmp_path, {"storage": "side"})
    with Backend(cfg) as backend:
        backend.storage.upload("docs", "a.txt", b"pinned file")
        assert backend.storage.download("docs", "a.txt") == b"pinned file"
    assert (tmp_path / "side-files" / "docs" / "a.txt").read_bytes() == b"pinned file"


@pytest.mark.parametrize(("services", "path"), [
    ({"db": "nope"}, "services.db"),
    ({"storage": "nope"}, "services.storage"),
    ({"collections": {"tickets": "nope"}}, "services.collections.tickets"),
])
def test_an_unknown_provider_name_is_backend_002_naming_the_field_and_the_fix(tmp_path, services, path):
    with pytest.raises(ConfigInvalid) as caught:
        load_config(write_config(tmp_path, providers(tmp_path), services=services))
    message = str(caught.value)
    assert message.startswith("BACKEND_002") and f"{path}: 'nope' is not a provider under providers" in message
    assert "main, side, spare" in message and "\n" not in message


def test_an_unknown_key_under_services_is_backend_002(tmp_path):
    with pytest.raises(ConfigInvalid, match=r"services\.auth: Extra inputs are not permitted"):
        load_config(write_config(tmp_path, providers(tmp_path), services={"auth": "main"}))


def test_shiftover_status_shows_every_route_with_its_providers_health_and_fits_80_columns(tmp_path):
    import json

    from typer.testing import CliRunner

    from shiftover.adapters.base import ProbeResult
    from shiftover.cli.main import app

    cfg = configured(tmp_path, {"storage": "side", "collections": {"customers": "spare"}})
    control = ControlStore(cfg.control.url.get_secret_value())
    control.set_route("orders", "side")
    for ok, ms in ((True, 4.0), (False, 9.5), (True, 12.25)):  # newest last: 2 of 3 probes succeeded
        control.record_probe(ProbeResult("side", ok, ms, None if ok else "refused", ()))
    control.settle_health_state("side", "healthy", 1)
    control.close()
    config_path = str(cfg.path)
    shown = CliRunner().invoke(app, ["status", "--config", config_path], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    table = shown.output[shown.output.index("Routes"):]
    lines = [line for line in table.splitlines() if line.startswith("│")]
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    assert [line.split("│")[1:5] for line in lines[:3]] == [
        [" db.orders    ", " side     ", " migration ", " healthy "],
        [" storage      ", " side     ", " services  ", " healthy "],
        [" db.customers ", " spare    ", " services  ", " unknown "]]
    assert "12.2 ms" in lines[0] and "66.7 %" in lines[0] and "never" in lines[2]
    data = json.loads(CliRunner().invoke(app, ["status", "--config", config_path, "--json"]).output)
    assert [(r["route"], r["provider"], r["set_by"], r["health"], r["uptime"]) for r in data["routes"]] == [
        ("db.orders", "side", "migration", "healthy", 66.667), ("storage", "side", "services", "healthy", 66.667),
        ("db.customers", "spare", "services", "unknown", None)]
    assert data["routes"][0]["response_time_ms"] == 12.25 and data["routes"][0]["last_check"]
