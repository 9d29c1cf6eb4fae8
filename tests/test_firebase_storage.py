"""Files as a collection across providers: Firebase Storage (the firebase-tools emulator) → Supabase Storage (the HTTP
fake) with the `migrate` flow, keeping path, content type and custom metadata, verified by content checksums."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from shiftover.adapters.errors import CutoverBlocked, InvalidRequest, UnsupportedValue
from shiftover.adapters.registry import open_adapter
from shiftover.flows.migrate import migrate
from tests.fixtures_firebase_storage import FirebaseStorageEmulator
from tests.fixtures_supabase import SupabaseFake
from tests.helpers import config, write_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

BIG = random.Random(3).randbytes(2**20)
SEED: list[tuple[str, bytes, str, dict[str, str]]] = [  # path, content, content type, custom metadata
    ("avatars/u1/photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png", {"owner": "u1"}),
    ("big/blob.bin", BIG, "application/octet-stream", {}),
    ("docs/2024/q1/report final.pdf", b"%PDF-1.7 " * 300, "application/pdf", {"dept": "finance", "rev": "3"}),
    ("héllo/日本語 ファイル.txt", "こんにちは, Zoë\n".encode(), "text/plain", {"lang": "ja"}),
    ("shared/link.json", b'{"a": 1}', "application/json",
     {"firebaseStorageDownloadTokens": "0b7c1f2e-tok", "app": "web"}),
]


def _config(tmp_path: Path, fb: FirebaseStorageEmulator, pg_url: str, fake: SupabaseFake) -> Path:
    return write_config(tmp_path, {
        "firebase": {"kind": "firestore", "url": f"firestore://{fb.project}", "role": "primary",
                     "options": {"storage": {"buckets": [fb.bucket], "emulator_host": fb.host}}},
        "supabase": {"kind": "supabase", "url": pg_url,
                     "options": {"api_url": fake.url, "service_role_key": fake.key}}})


def _seed(fb: FirebaseStorageEmulator) -> None:
    """Objects as a Firebase app holds them, uploaded straight through the emulator (not through the adapter)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=fb.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": f"http://{fb.host}"})
    bucket = client.bucket(fb.bucket)
    for path, content, ctype, metadata in SEED:
        blob = bucket.blob(path)
        blob.metadata = metadata or None
        blob.upload_from_string(content, content_type=ctype)


def test_firebase_files_migrate_to_supabase_with_path_type_metadata_and_checksums(
        tmp_path: Path, pg_url: str, firebase_storage: FirebaseStorageEmulator, supabase_fake: SupabaseFake) -> None:
    cfg = _config(tmp_path, firebase_storage, pg_url, supabase_fake)
    name = f"storage/{firebase_storage.bucket}"
    _seed(firebase_storage)
    with open_adapter(config(cfg), "firebase") as fb:
        assert fb.capabilities.storage and not fb.capabilities.auth
        assert fb.count(name) == 5 and fb.key_boundaries(name, 2) == [("big/blob.bin",), ("héllo/日本語 ファイル.txt",)]
        assert [r["path"] for r in fb.scan(name, after=("big/blob.bin",), limit=2)] == \
            ["docs/2024/q1/report final.pdf", "héllo/日本語 ファイル.txt"]
        assert fb.get(name, ("shared/link.json",))["metadata"] == {"app": "web"}  # download tokens are not carried

    report = migrate(source="firebase", target="supabase", config_path=str(cfg), collections=[name],
                     chunk_rows=2, batch_size=2, switch=False)
    assert report.status == "validated", report.error
    files = report.collections[0]
    assert (files.source_rows, files.target_rows, files.digests_equal, files.chunks) == (5, 5, True, 3)
    assert {e.suite for e in report.expectations} == {"record_counts", "integrity", "schema"}
    assert all(e.success for e in report.expectations)
    assert any("not carried from firebase: download tokens" in n for n in report.notes)

    stored = supabase_fake.objects[firebase_storage.bucket]
    assert sorted(stored) == sorted(p for p, *_ in SEED)
    for path, content, ctype, metadata in SEED:
        obj = stored[path]
        assert hashlib.sha256(obj.content).hexdigest() == hashlib.sha256(content).hexdigest(), path
        assert obj.content_type == ctype, path
        assert obj.user_metadata == {k: v for k, v in metadata.items() if k != "firebaseStorageDownloadTokens"}
    with open_adapter(config(cfg), "firebase") as fb, open_adapter(config(cfg), "supabase") as sb:
        for left, right in zip(fb.scan(name), sb.scan(name), strict=True):
            assert {k: left[k] for k in ("path", "content_type", "size", "metadata", "sha256")} == \
                {k: right[k] for k in ("path", "content_type", "size", "metadata", "sha256")}


def test_a_file_altered_on_the_target_blocks_the_cutover(
        tmp_path: Path, pg_url: str, firebase_storage: FirebaseStorageEmulator, supabase_fake: SupabaseFake,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, firebase_storage, pg_url, supabase_fake)
    name = f"storage/{firebase_storage.bucket}"
    _seed(firebase_storage)
    handle = supabase_fake.handle

    def tamper(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, Any]:
        """Something in the target flips one byte of the 1 MiB file as it is stored."""
        out = handle(method, raw_path, headers, body)
        obj = supabase_fake.objects.get(firebase_storage.bucket, {}).get("big/blob.bin")
        if obj is not None and obj.content == BIG:
            obj.content = BIG[:-1] + bytes([BIG[-1] ^ 1])
        return out

    monkeypatch.setattr(supabase_fake, "handle", tamper)
    with pytest.raises(CutoverBlocked) as info:
        migrate(source="firebase", target="supabase", config_path=str(cfg), collections=[name],
                chunk_rows=2, batch_size=2)
    assert info.value.code == "BACKEND_003"
    assert f"{name} (start .. big/blob.bin]" in str(info.value)  # the range holding the file, and no other
    assert "(big/blob.bin .." not in str(info.value)
    assert "source_digest == target_digest" in str(info.value)


def test_what_firebase_storage_cannot_keep_is_refused_not_changed(
        tmp_path: Path, pg_url: str, firebase_storage: FirebaseStorageEmulator, supabase_fake: SupabaseFake) -> None:
    cfg = _config(tmp_path, firebase_storage, pg_url, supabase_fake)
    name = f"storage/{firebase_storage.bucket}"
    with open_adapter(config(cfg), "firebase") as fb:
        rec = {"path": "a/n.txt", "content": b"1", "content_type": "text/plain", "metadata": {"n": 2, "ok": "y"}}
        with pytest.raises(UnsupportedValue, match="only text values"):
            fb.upsert(name, [rec])
        assert fb.upsert(name, [{**rec, "metadata": {"n": "2"}}]) == 1
        assert fb.get(name, ("a/n.txt",))["metadata"] == {"n": "2"}
        assert fb.delete(name, [("a/n.txt",), ("a/missing.txt",)]) == 1 and fb.count(name) == 0
        with pytest.raises(InvalidRequest, match="does not empty the app's bucket"):
            fb.drop_collection(name)
        with pytest.raises(InvalidRequest, match="--strategy immediate"):
            fb.changes(name, since=None)
