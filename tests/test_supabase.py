"""Supabase: the data plane against the real local PostgreSQL; Auth admin and Storage against the local HTTP fake
(tests/fixtures_supabase.py) that answers the requests supabase-py sends."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from shiftover.adapters.base import CollectionSchema, Column, Filter, KeyRange
from shiftover.adapters.errors import AuthenticationFailed, BackendError, InvalidRequest, ProviderUnavailable
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.supabase.adapter import SupabaseAdapter
from shiftover.adapters.supabase.auth import UID_NAMESPACE
from shiftover.adapters.userfiles import USERS, files_schema
from shiftover.flows.migrate import migrate
from tests.fixtures_supabase import SupabaseFake
from tests.helpers import config, write_config

ORDERS = CollectionSchema("orders", (Column("id", "integer", False), Column("note", "text"),
                                     Column("at", "timestamp")), ("id",))
# GoTrue's own test vector (supabase/auth internal/crypto/password_test.go, password "mytestpassword"), with the hash
# and key in the web-safe alphabet Firebase's export may use: the adapter must produce exactly GoTrue's string.
GOTRUE_VERIFIED = ("$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=ou9tdYTGyYm8kuR6Dt0Bp0kDuAYoXrK16mbZO4yGwAn3oLspjnN0/"
                   "c41v8xZnO1n14J3MjKj1b2g6AUCAlFwMw==$C0sHCg9ek77hsg==$"
                   "zKVTMvnWVw5BBOZNUdnsalx4c4c7y/w7IS5p6Ut2+CfEFFlz37J9huyQfov4iizN8dbjvEJlM5tQaJP84+hfTw==")
FB_KEY = "ou9tdYTGyYm8kuR6Dt0Bp0kDuAYoXrK16mbZO4yGwAn3oLspjnN0_c41v8xZnO1n14J3MjKj1b2g6AUCAlFwMw=="
FB_SALT = "C0sHCg9ek77hsg=="
FB_HASH = "zKVTMvnWVw5BBOZNUdnsalx4c4c7y_w7IS5p6Ut2-CfEFFlz37J9huyQfov4iizN8dbjvEJlM5tQaJP84-hfTw=="


def _adapter(pg_url: str, fake: SupabaseFake | None = None, **options) -> SupabaseAdapter:
    if fake is not None:
        options |= {"api_url": fake.url, "service_role_key": fake.key}
    return SupabaseAdapter("sb", pg_url, SupabaseAdapter.Options.model_validate(options))


def _plain(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg://", "postgresql://")


def test_data_plane_is_postgres_in_public(pg_url: str) -> None:
    with _adapter(pg_url) as sb:
        assert not sb.capabilities.auth and not sb.capabilities.storage
        sb.create_collection(ORDERS)
        at = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
        sb.upsert("orders", [{"id": i, "note": f"n{i} ünï", "at": at} for i in range(1, 6)])
        assert sb.collections() == ["orders"]
        assert [r["id"] for r in sb.scan("orders", after=(2,), limit=2)] == [3, 4]
        assert sb.find("orders", [Filter("note", "eq", "n5 ünï")])[0]["at"] == at
    with psycopg.connect(_plain(pg_url)) as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone()[0] == 5


def test_rls_table_is_refused_for_a_role_that_does_not_bypass_it(pg_url: str) -> None:
    with _adapter(pg_url) as sb:
        sb.create_collection(ORDERS)
        sb.upsert("orders", [{"id": 1, "note": "a", "at": None}])
    role = "shiftover_rls_" + pg_url.rsplit("_", 1)[-1]
    with psycopg.connect(_plain(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT ON public.orders TO "{role}"')
        conn.execute("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY")
    try:
        limited = pg_url.replace("postgres@", f"{role}@", 1)
        with _adapter(limited) as sb, pytest.raises(AuthenticationFailed, match="row level security"):
            sb.count("orders")
        with _adapter(pg_url) as sb:  # postgres is a superuser: it sees every row, and the policy stays
            assert sb.count("orders") == 1
            assert sb.migration_notes(["orders"], as_target=True) == [
                "RLS: 'orders' has row level security on and no policies: only the service role can use it"]
        with psycopg.connect(_plain(pg_url)) as conn:
            assert conn.execute("SELECT relrowsecurity FROM pg_class WHERE relname = 'orders'").fetchone()[0]
    finally:
        with psycopg.connect(_plain(pg_url), autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON public.orders FROM "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_users_round_trip_through_the_admin_api(pg_url: str, supabase_fake: SupabaseFake) -> None:
    users = [
        {"uid": "Xq3fbUid0000000000000000001", "email": "ann@example.com", "email_verified": True,
         "phone": "+15550001111", "disabled": False, "user_metadata": {"display_name": "Ann"},
         "app_metadata": {"plan": "pro"}, "password_hash": FB_HASH, "password_salt": FB_SALT,
         "password_hasher": {"algorithm": "FIREBASE_SCRYPT", "rounds": 8, "mem_cost": 14, "salt_separator": "Bw==",
                             "signer_key": SecretStr(FB_KEY)}},
        {"uid": "0b7c62b5-9f51-4b7e-8a0c-2a0b8d6f3a11", "email": "bob@example.com", "email_verified": False,
         "phone": None, "disabled": True, "user_metadata": {}, "app_metadata": {}, "password_hash": None,
         "password_salt": None, "password_hasher": None},
    ]
    with _adapter(pg_url, supabase_fake) as sb:
        assert sb.capabilities.auth and USERS in sb.collections()
        assert sb.probe().checks == ("connect", "read", "auth", "storage")
        assert sb.upsert(USERS, users) == 2
        got = {r["uid"]: r for r in sb.scan(USERS)}
        assert set(got) == {u["uid"] for u in users}
        ann = got[users[0]["uid"]]
        assert (ann["email"], ann["email_verified"], ann["phone"], ann["disabled"]) == \
            ("ann@example.com", True, "+15550001111", False)
        assert ann["user_metadata"] == {"display_name": "Ann"} and ann["app_metadata"] == {"plan": "pro"}
        assert got[users[1]["uid"]]["disabled"] is True and got[users[1]["uid"]]["email_verified"] is False
        # the non-UUID uid became a uuid5 id with the uid in app_metadata; the UUID uid stayed the id
        import uuid

        stored = supabase_fake.users[str(uuid.uuid5(UID_NAMESPACE, users[0]["uid"]))]
        assert stored.data["app_metadata"]["firebase_uid"] == users[0]["uid"]
        assert users[1]["uid"] in supabase_fake.users
        assert stored.encrypted_password == GOTRUE_VERIFIED
        # an upsert replaces metadata exactly (GoTrue merges: removed keys are sent as null)
        sb.upsert(USERS, [{**users[0], "app_metadata": {"role": "admin"}, "email_verified": True}])
        assert sb.get(USERS, (users[0]["uid"],))["app_metadata"] == {"role": "admin"}
        assert sb.count(USERS) == 2
        assert sb.delete(USERS, [(users[1]["uid"],), ("nobody",)]) == 1
        assert [r["uid"] for r in sb.find(USERS, [Filter("email", "eq", "ann@example.com")])] == [users[0]["uid"]]
    methods = {(m, p.split("?")[0]) for m, p in supabase_fake.requests}
    assert ("POST", "/auth/v1/admin/users") in methods and ("GET", "/auth/v1/admin/users") in methods
    assert any(m == "PUT" and p.startswith("/auth/v1/admin/users/") for m, p in methods)
    assert any(m == "DELETE" and p.startswith("/auth/v1/admin/users/") for m, p in methods)


def test_a_scrypt_hash_without_parameters_is_refused(pg_url: str, supabase_fake: SupabaseFake) -> None:
    user = {"uid": "u1", "email": "u1@example.com", "password_hash": "aGFzaA==", "password_salt": "c2FsdA==",
            "password_hasher": {"algorithm": "FIREBASE_SCRYPT"}}
    with _adapter(pg_url, supabase_fake) as sb, pytest.raises(InvalidRequest, match="hash parameters"):
        sb.upsert(USERS, [user])
    assert supabase_fake.users == {}


def test_files_round_trip_through_storage(pg_url: str, supabase_fake: SupabaseFake) -> None:
    with _adapter(pg_url, supabase_fake, page_size=2) as sb:
        sb.create_collection(files_schema("storage/photos"))
        files = [{"path": f"albums/{i // 3}/p{i}.jpg", "content": bytes([i]) * (i + 1), "content_type": "image/jpeg",
                  "metadata": {"n": i}} for i in range(7)]
        assert sb.upsert("storage/photos", files) == 7
        got = sb.scan("storage/photos")
        assert [r["path"] for r in got] == sorted(f["path"] for f in files)
        by_path = {r["path"]: r for r in got}
        import hashlib

        for f in files:
            r = by_path[f["path"]]
            assert (r["content"], r["content_type"], r["metadata"], r["size"]) == \
                (f["content"], "image/jpeg", f["metadata"], len(f["content"]))
            assert r["sha256"] == hashlib.sha256(f["content"]).hexdigest()
        assert sb.key_boundaries("storage/photos", 3) == [("albums/0/p2.jpg",), ("albums/1/p5.jpg",)]
        assert [r["path"] for r in sb.scan("storage/photos", after=("albums/0/p2.jpg",), limit=2)] == \
            ["albums/1/p3.jpg", "albums/1/p4.jpg"]
        sb.replace_range("storage/photos", KeyRange(("albums/1",), ("albums/1/p9",)),
                         [{**files[4], "content": b"new"}])
        assert [r["path"] for r in sb.scan("storage/photos")] == \
            ["albums/0/p0.jpg", "albums/0/p1.jpg", "albums/0/p2.jpg", "albums/1/p4.jpg", "albums/2/p6.jpg"]
        assert sb.get("storage/photos", ("albums/1/p4.jpg",))["content"] == b"new"
        sb.drop_collection("storage/photos")
        assert "storage/photos" not in sb.collections()
    assert ("POST", "/storage/v1/object/list/photos") in supabase_fake.requests
    assert ("DELETE", "/storage/v1/object/photos") in supabase_fake.requests


def test_api_errors_are_backend_errors_without_the_key(pg_url: str, supabase_fake: SupabaseFake) -> None:
    with _adapter(pg_url, None, api_url=supabase_fake.url, service_role_key="wrong-" + supabase_fake.key) as sb:
        with pytest.raises(AuthenticationFailed) as err:
            sb.count(USERS)
    assert err.value.code == "BACKEND_007" and supabase_fake.key not in str(err.value)
    supabase_fake.fail_next.append(503)
    with _adapter(pg_url, supabase_fake) as sb, pytest.raises(ProviderUnavailable):
        sb.count(USERS)
    supabase_fake.fail_next.append(503)
    with _adapter(pg_url, supabase_fake) as sb:
        probe = sb.probe()
    assert not probe.ok and "BACKEND_006" in (probe.error or "") and supabase_fake.key not in (probe.error or "")
    with _adapter(pg_url, None, api_url="http://127.0.0.1:9", service_role_key=supabase_fake.key) as sb:
        with pytest.raises(BackendError) as err:
            sb.scan(USERS)
    assert err.value.transient and supabase_fake.key not in str(err.value)


@pytest.mark.usefixtures("prefect_harness")
def test_migrate_postgres_to_supabase_creates_tables_in_public_and_reports_rls(
        tmp_path: Path, pg_url: str, pg_url2: str, supabase_fake: SupabaseFake,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_config(tmp_path, {
        "pg": {"kind": "postgresql", "url": pg_url, "role": "primary"},
        "sb": {"kind": "supabase", "url": pg_url2,
               "options": {"api_url": supabase_fake.url, "service_role_key": supabase_fake.key}}})
    with open_adapter(config(cfg), "pg") as pg:
        pg.create_collection(ORDERS)
        pg.upsert("orders", [{"id": i, "note": f"n{i}", "at": None} for i in range(500)])
    report = migrate(source="pg", target="sb", config_path=str(cfg), chunk_rows=200)
    assert report.status == "switched" and report.collections[0].digests_equal
    # from a PostgreSQL source the table moves with the source's RLS state (here: off, no policies), and says so
    assert any("'orders' moves from" in n and "row level security off" in n for n in report.notes)
    with psycopg.connect(_plain(pg_url2)) as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone()[0] == 500
    from tests.helpers import newest_artifact as _artifact

    text = asyncio.run(_artifact("migrate-pg-to-sb"))
    assert "row level security off" in text
    for where in (text, report.model_dump_json(), caplog.text):
        assert supabase_fake.key not in where


@pytest.mark.usefixtures("prefect_harness")
def test_migrate_storage_objects_between_projects_verified_by_checksums(
        tmp_path: Path, pg_url: str, pg_url2: str, supabase_fake: SupabaseFake, supabase_fake2: SupabaseFake) -> None:
    cfg = write_config(tmp_path, {
        "old": {"kind": "supabase", "url": pg_url, "role": "primary",
                "options": {"api_url": supabase_fake.url, "service_role_key": supabase_fake.key}},
        "new": {"kind": "supabase", "url": pg_url2,
                "options": {"api_url": supabase_fake2.url, "service_role_key": supabase_fake2.key}}})
    files = [{"path": f"docs/{i:02d}.pdf", "content": f"pdf {i} ".encode() * 50, "content_type": "application/pdf",
              "metadata": {"owner": f"u{i}"}} for i in range(12)]
    with open_adapter(config(cfg), "old") as old:
        old.create_collection(files_schema("storage/docs"))
        old.upsert("storage/docs", files)
    params = dict(source="old", target="new", config_path=str(cfg), collections=["storage/docs"],
                  chunk_rows=5, switch=False)
    report = migrate(**params)
    assert report.status == "validated" and report.collections[0].digests_equal
    assert report.collections[0].target_rows == 12
    target = supabase_fake2.objects["docs"]
    for f in files:
        assert (target[f["path"]].content, target[f["path"]].content_type, target[f["path"]].user_metadata) == \
            (f["content"], "application/pdf", f["metadata"])
    # one byte changed on the target: the content checksum catches it and the cutover is refused
    target["docs/07.pdf"].content = target["docs/07.pdf"].content[:-1] + b"!"
    from shiftover.tasks.migration import measure_collection

    evidence = measure_collection.fn(str(cfg), "old", "new", "storage/docs",
                                     [KeyRange(None, ("docs/04.pdf",)), KeyRange(("docs/04.pdf",), None)])
    assert [d.digest for d in evidence.source_digests][0] == [d.digest for d in evidence.target_digests][0]
    assert [d.digest for d in evidence.source_digests][1] != [d.digest for d in evidence.target_digests][1]
    assert evidence.source_rows == evidence.target_rows == 12  # a count alone would have said "equal"
