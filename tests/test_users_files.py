"""Users as a collection across providers: Firebase Auth (the firebase-tools emulator) → Supabase Auth (the HTTP fake)
with the `migrate` flow, keeping uid, email, verification, metadata and the scrypt password hash.

The Auth emulator exports a placeholder ("fakeHash:salt=...:password=...") for users created with a password, not a
real scrypt hash, so the hash-carrying path is proven with users *imported* into the emulator with a real Firebase
scrypt hash (GoTrue's own test vector for "mytestpassword"): the emulator exports it as given, and Supabase must
receive exactly the `$fbscrypt$` string GoTrue's tests verify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest

from shiftover.adapters.errors import InvalidRequest
from shiftover.adapters.registry import open_adapter
from shiftover.adapters.supabase.auth import UID_NAMESPACE
from shiftover.adapters.userfiles import USERS
from shiftover.flows.migrate import migrate
from tests.fixtures_supabase import FirebaseAuthEmulator, SupabaseFake
from tests.helpers import config, write_config
from tests.test_supabase import FB_HASH, FB_KEY, FB_SALT, GOTRUE_VERIFIED

pytestmark = pytest.mark.usefixtures("prefect_harness")
UUID_UID = "3f0e9a1c-5b8d-4e2f-9c7a-1d2e3f4a5b6c"


def _config(tmp_path: Path, fb: FirebaseAuthEmulator, pg_url: str, fake: SupabaseFake) -> Path:
    return write_config(tmp_path, {
        "firebase": {"kind": "firestore", "url": f"firestore://{fb.project}", "role": "primary",
                     "options": {"auth": {"emulator_host": fb.host, "hash_key": FB_KEY, "salt_separator": "Bw==",
                                          "rounds": 8, "mem_cost": 14}}},
        "supabase": {"kind": "supabase", "url": pg_url,
                     "options": {"api_url": fake.url, "service_role_key": fake.key}}})


def _seed_firebase(cfg: Path) -> None:
    """Users as a Firebase project holds them: imported with scrypt hashes, created by the app, disabled ones."""
    from firebase_admin import auth

    with open_adapter(config(cfg), "firebase") as fb:
        client = fb.users.client
        scrypt = auth.UserImportHash.scrypt(key=_b64(FB_KEY), rounds=8, memory_cost=14, salt_separator=b"\x07")
        result = client.import_users([
            auth.ImportUserRecord(uid="kX9fbAnnUid0000000000000001", email="ann@example.com", email_verified=True,
                                  display_name="Ann Lee", photo_url="https://example.com/ann.png",
                                  phone_number="+15550001111", custom_claims={"role": "admin", "tier": 2},
                                  user_metadata=auth.UserMetadata(1577934245000, 1700000000000),
                                  password_hash=_b64(FB_HASH), password_salt=_b64(FB_SALT)),
            auth.ImportUserRecord(uid=UUID_UID, email="uuid@example.com", email_verified=False,
                                  password_hash=_b64(FB_HASH), password_salt=_b64(FB_SALT)),
        ], hash_alg=scrypt)
        assert result.failure_count == 0, [e.reason for e in result.errors]
        client.create_user(uid="kX9fbBobUid0000000000000002", email="Bob@Example.com", disabled=True)
        client.create_user(uid="kX9fbPhoneUid00000000000003", phone_number="+15550002222")


def _b64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_firebase_users_migrate_to_supabase_with_uid_metadata_and_password_hash(
        tmp_path: Path, pg_url: str, firebase_auth: FirebaseAuthEmulator, supabase_fake: SupabaseFake,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = _config(tmp_path, firebase_auth, pg_url, supabase_fake)
    _seed_firebase(cfg)
    with open_adapter(config(cfg), "firebase") as fb:
        ann = fb.get(USERS, ("kX9fbAnnUid0000000000000001",))
        assert ann["password_hash"] == FB_HASH and ann["password_salt"] == FB_SALT  # the emulator exports them
        assert ann["password_hasher"]["mem_cost"] == 14
        assert FB_KEY not in repr(ann) and FB_KEY not in str(ann)  # the signer key rides as a SecretStr

    caplog.set_level(logging.INFO)
    report = migrate(source="firebase", target="supabase", config_path=str(cfg),
                     collections=[USERS], chunk_rows=2, batch_size=2)
    assert report.status == "switched", report.error
    users = report.collections[0]
    assert (users.source_rows, users.target_rows, users.digests_equal) == (4, 4, True)
    assert "without created_at, last_sign_in_at, password_hash, password_hasher, password_salt" in users.digest_method
    notes = "\n".join(report.notes)
    assert "auth.users: dropped by supabase (cannot keep them): created_at" in notes
    assert "written to supabase but not verified (never read back): password_hash" in notes
    assert "not carried from firebase: provider links" in notes

    stored = {u.data["app_metadata"].get("firebase_uid", u.data["id"]): u for u in supabase_fake.users.values()}
    ann = stored["kX9fbAnnUid0000000000000001"]
    assert ann.data["id"] == str(uuid.uuid5(UID_NAMESPACE, "kX9fbAnnUid0000000000000001"))
    assert ann.data["email"] == "ann@example.com" and ann.data["email_confirmed_at"] is not None
    assert ann.data["phone"] == "15550001111" and ann.data["phone_confirmed_at"] is not None
    assert ann.data["user_metadata"] == {"display_name": "Ann Lee", "photo_url": "https://example.com/ann.png"}
    assert ann.data["app_metadata"] == {"provider": "email", "providers": ["email"], "role": "admin", "tier": 2,
                                        "firebase_uid": "kX9fbAnnUid0000000000000001"}
    assert ann.encrypted_password == GOTRUE_VERIFIED  # the string Supabase Auth verifies for "mytestpassword"
    same_id = supabase_fake.users[UUID_UID]  # a UUID uid is kept as the Supabase id
    assert "firebase_uid" not in same_id.data["app_metadata"] and same_id.data["email_confirmed_at"] is None
    assert same_id.encrypted_password == GOTRUE_VERIFIED
    bob = stored["kX9fbBobUid0000000000000002"]
    assert bob.data["email"] == "bob@example.com" and bob.data.get("banned_until") is not None
    assert bob.encrypted_password is None
    assert stored["kX9fbPhoneUid00000000000003"].data["email"] == ""

    from tests.helpers import newest_artifact as _artifact

    text = asyncio.run(_artifact("migrate-firebase-to-supabase"))
    assert "dropped by supabase" in text
    for where in (text, report.model_dump_json(), caplog.text, str(report.error)):
        assert FB_KEY not in where and supabase_fake.key not in where

    # a second run changes nothing and still passes: upserts by uid are idempotent
    again = migrate(source="firebase", target="supabase", config_path=str(cfg), collections=[USERS],
                    switch=False)
    assert again.status == "validated" and again.collections[0].digests_equal and len(supabase_fake.users) == 4


def test_a_changed_user_blocks_the_cutover(tmp_path: Path, pg_url: str, firebase_auth: FirebaseAuthEmulator,
                                           supabase_fake: SupabaseFake) -> None:
    from shiftover.tasks.migration import measure_collection

    cfg = _config(tmp_path, firebase_auth, pg_url, supabase_fake)
    _seed_firebase(cfg)
    report = migrate(source="firebase", target="supabase", config_path=str(cfg), collections=[USERS],
                     switch=False)
    assert report.collections[0].digests_equal
    victim = next(u for u in supabase_fake.users.values() if u.data["email"] == "ann@example.com")
    victim.data["app_metadata"]["role"] = "viewer"
    from shiftover.adapters.base import KeyRange

    evidence = measure_collection.fn(str(cfg), "firebase", "supabase", USERS, [KeyRange(None, None)],
                                     report_excluded(cfg))
    assert evidence.source_rows == evidence.target_rows == 4
    assert evidence.source_digests[0].digest != evidence.target_digests[0].digest


def report_excluded(cfg: Path) -> tuple[str, ...]:
    from shiftover.tasks.migration import field_limits

    with open_adapter(config(cfg), "firebase") as src, open_adapter(config(cfg), "supabase") as dst:
        return field_limits(src, dst, USERS, True)[0]


def test_supabase_users_go_back_to_firebase(tmp_path: Path, pg_url: str, firebase_auth: FirebaseAuthEmulator,
                                            supabase_fake: SupabaseFake) -> None:
    cfg = _config(tmp_path, firebase_auth, pg_url, supabase_fake)
    with open_adapter(config(cfg), "supabase") as sb:
        sb.upsert(USERS, [{"uid": UUID_UID, "email": "back@example.com", "email_verified": True, "phone": None,
                           "disabled": False, "user_metadata": {"display_name": "Back", "theme": "dark"},
                           "app_metadata": {"role": "admin"}, "created_at": dt.datetime(2021, 1, 1,
                                                                                     tzinfo=dt.timezone.utc)}])
    with open_adapter(config(cfg), "supabase") as sb, open_adapter(config(cfg), "firebase") as fb:
        assert fb.upsert(USERS, sb.scan(USERS)) == 1
        back = fb.get(USERS, (UUID_UID,))
        assert (back["email"], back["email_verified"], back["app_metadata"]) == ("back@example.com", True,
                                                                                 {"role": "admin"})
        assert back["user_metadata"] == {"display_name": "Back"}  # Firebase keeps no other metadata: reported
        assert "user_metadata" in fb.field_limits(USERS).dropped
        with pytest.raises(InvalidRequest, match="hash parameters"):
            fb.upsert(USERS, [{**back, "uid": "x1", "password_hash": FB_HASH, "password_salt": FB_SALT,
                               "password_hasher": {"algorithm": "FIREBASE_SCRYPT", "signer_key": None}}])
        assert fb.get(USERS, ("x1",)) is None
