"""The storage service (adapters/storage_api): the same cases over every store — local files and memory through fsspec,
Supabase Storage (the HTTP fake), Firebase Storage (the firebase-tools emulator) — plus what each one offers or refuses
(signed URLs) and how `file_store` picks a store from backends.yaml."""

from __future__ import annotations

import datetime as dt
import io
import random
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shiftover.adapters.errors import ConfigInvalid, InvalidRequest, ObjectExists, ObjectNotFound, UnsupportedValue
from shiftover.adapters.storage_api import FileStore, file_store
from tests.helpers import config, write_config

BINARY = bytes(range(256)) * 4 + random.Random(17).randbytes(300_000)
STORES = ["local", "memory", "supabase", "firebase"]


@dataclass
class Case:
    kind: str
    files: FileStore
    bucket: str
    signs: bool  # offers signed download and upload URLs here


def _providers(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict, str]:
    kind = request.param
    if kind == "local":
        return {"kind": "sqlite", "url": "sqlite:///app.db",
                "options": {"files": {"url": f"file://{tmp_path / 'files'}"}}}, "uploads"
    if kind == "memory":
        return {"kind": "memory"}, f"b{uuid.uuid4().hex[:8]}"
    if kind == "supabase":
        fake = request.getfixturevalue("supabase_fake")
        fake.buckets["uploads"] = {"id": "uploads", "name": "uploads", "public": False}
        fake.objects["uploads"] = {}
        return {"kind": "supabase", "options": {"api_url": fake.url, "service_role_key": fake.key}}, "uploads"
    fb = request.getfixturevalue("firebase_storage")
    return {"kind": "firestore", "url": f"firestore://{fb.project}",
            "options": {"storage": {"buckets": [fb.bucket], "emulator_host": fb.host}}}, fb.bucket


@pytest.fixture(params=STORES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    provider, bucket = _providers(request, tmp_path)
    name = f"p_{request.param}_{uuid.uuid4().hex[:6]}"
    cfg = config(write_config(tmp_path, {name: provider}))
    with file_store(cfg, name) as files:
        yield Case(request.param, files, bucket, request.param == "supabase")


def test_binary_round_trip_from_bytes_and_from_a_file_object(case: Case) -> None:
    files, b = case.files, case.bucket
    info = files.upload(b, "docs/blob.bin", BINARY, content_type="application/x-test")
    assert (info.path, info.size, info.content_type) == ("docs/blob.bin", len(BINARY), "application/x-test")
    assert files.download(b, "docs/blob.bin") == BINARY
    files.upload(b, "héllo/日本語 ファイル.txt", io.BytesIO("こんにちは\n".encode()))
    assert files.download(b, "héllo/日本語 ファイル.txt").decode() == "こんにちは\n"
    assert files.info(b, "héllo/日本語 ファイル.txt").content_type == "text/plain"  # guessed from the extension


def test_info_fields(case: Case) -> None:
    files, b = case.files, case.bucket
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    files.upload(b, "a/photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), metadata={"owner": "u1", "rev": "1"})
    info = files.info(b, "a/photo.png")
    assert (info.bucket, info.path, info.size, info.content_type) == (b, "a/photo.png", 108, "image/png")
    assert info.metadata == {"owner": "u1", "rev": "1"}
    assert info.updated is not None and before < info.updated < before + dt.timedelta(minutes=10)
    assert info.updated.tzinfo == dt.timezone.utc
    assert info.etag and files.info(b, "a/photo.png").etag == info.etag
    files.upload(b, "a/photo.png", b"other bytes", content_type="image/png", upsert=True)
    assert files.info(b, "a/photo.png").etag != info.etag and files.info(b, "a/photo.png").size == 11


def test_list_by_prefix_with_limit_and_offset(case: Case) -> None:
    files, b = case.files, case.bucket
    for path in ["c.txt", "a/2.txt", "ab.txt", "a/b/3.txt", "a/1.txt"]:
        files.upload(b, path, path.encode())
    assert [f.path for f in files.list(b)] == ["a/1.txt", "a/2.txt", "a/b/3.txt", "ab.txt", "c.txt"]
    assert [f.path for f in files.list(b, "a/")] == ["a/1.txt", "a/2.txt", "a/b/3.txt"]
    assert [f.path for f in files.list(b, "a")] == ["a/1.txt", "a/2.txt", "a/b/3.txt", "ab.txt"]
    assert [f.path for f in files.list(b, "a/b/")] == ["a/b/3.txt"]
    assert [f.path for f in files.list(b, limit=2, offset=1)] == ["a/2.txt", "a/b/3.txt"]
    assert [f.path for f in files.list(b, "a/", limit=5, offset=2)] == ["a/b/3.txt"]
    assert files.list(b, "zzz") == [] and files.list(b, offset=9) == []
    listed = files.list(b, "c")[0]
    assert (listed.size, listed.content_type) == (5, "text/plain")


def test_metadata_update_replaces_it_and_keeps_the_content(case: Case) -> None:
    files, b = case.files, case.bucket
    files.upload(b, "m/doc.pdf", b"%PDF-1.7 " * 50, metadata={"owner": "u1", "rev": "1"})
    updated = files.update_metadata(b, "m/doc.pdf", {"rev": "2", "dept": "finance"})
    assert updated.metadata == {"rev": "2", "dept": "finance"}
    again = files.info(b, "m/doc.pdf")
    assert again.metadata == {"rev": "2", "dept": "finance"} and again.content_type == "application/pdf"
    assert files.download(b, "m/doc.pdf") == b"%PDF-1.7 " * 50
    with pytest.raises(UnsupportedValue, match="is not text"):
        files.update_metadata(b, "m/doc.pdf", {"n": 2})  # type: ignore[dict-item]
    assert files.info(b, "m/doc.pdf").metadata == {"rev": "2", "dept": "finance"}


def test_delete_counts_what_was_there(case: Case) -> None:
    files, b = case.files, case.bucket
    for path in ["d/1", "d/2", "d/3"]:
        files.upload(b, path, b"x")
    assert files.delete(b, ["d/1", "d/3", "d/missing"]) == 2
    assert [f.path for f in files.list(b, "d/")] == ["d/2"]
    assert files.delete(b, ["d/1"]) == 0


def test_upload_without_upsert_refuses_to_overwrite(case: Case) -> None:
    files, b = case.files, case.bucket
    files.upload(b, "u/keep.txt", b"first")
    with pytest.raises(ObjectExists) as info:
        files.upload(b, "u/keep.txt", b"second")
    assert info.value.code == "BACKEND_020" and "upsert=True" in str(info.value) and "\n" not in str(info.value)
    assert files.download(b, "u/keep.txt") == b"first"
    files.upload(b, "u/keep.txt", b"second", upsert=True)
    assert files.download(b, "u/keep.txt") == b"second"


def test_a_missing_file_is_a_backend_not_found(case: Case) -> None:
    files, b = case.files, case.bucket
    files.upload(b, "here.txt", b"1")
    for call in (lambda: files.download(b, "nope/gone.txt"), lambda: files.info(b, "nope/gone.txt"),
                 lambda: files.update_metadata(b, "nope/gone.txt", {"a": "b"})):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert info.value.code == "BACKEND_019" and "'nope/gone.txt'" in str(info.value)
        assert "\n" not in str(info.value)


def test_paths_no_store_can_hold_the_same_way_are_refused(case: Case) -> None:
    for bad in ["/abs.txt", "dir/", "a/../b", "a//b", ""]:
        with pytest.raises(UnsupportedValue, match="cannot be a file path"):
            case.files.upload(case.bucket, bad, b"x")
    with pytest.raises(UnsupportedValue, match="cannot be a bucket name"):
        case.files.upload("a/b", "x.txt", b"x")


def test_signed_urls_where_the_provider_signs(case: Case) -> None:
    files, b = case.files, case.bucket
    files.upload(b, "s/report final.pdf", BINARY[:5000], content_type="application/pdf")
    if not case.signs:  # local and memory files (fsspec has no signer for them), the Firebase emulator (no key)
        for call in (files.signed_download_url, files.signed_upload_url):
            with pytest.raises(InvalidRequest) as info:
                call(b, "s/report final.pdf", 60)
            assert info.value.code == "BACKEND_014" and " — " in str(info.value) and "\n" not in str(info.value)
        if case.kind == "firebase":
            assert "service account" in str(info.value) and "emulator" in str(info.value)
        return
    url = files.signed_download_url(b, "s/report final.pdf", 60)
    with urllib.request.urlopen(url, timeout=10) as resp:  # no key: the URL alone
        assert resp.read() == BINARY[:5000]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url.replace("token=", "token=x"), timeout=10)
    with pytest.raises(ObjectNotFound):
        files.signed_download_url(b, "s/none.pdf", 60)

    upload = files.signed_upload_url(b, "s/new.bin", 600)
    put = urllib.request.Request(upload, data=b"uploaded by a browser", method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 200
    assert files.download(b, "s/new.bin") == b"uploaded by a browser"


def test_file_store_picks_the_store_from_the_configuration(tmp_path: Path) -> None:
    from shiftover.adapters.storage_api.fsspec_store import FsspecFileStore

    cfg = config(write_config(tmp_path, {
        "pg": {"kind": "postgresql", "url": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"},
        "sb": {"kind": "supabase", "url": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"},
        "fb": {"kind": "firestore", "url": "firestore://demo-x"},
        "on_disk": {"kind": "mongodb", "url": "mongomock://x", "options": {"files": {"url": f"file://{tmp_path}/f"}}},
    }))
    for name, hint in [("pg", "options.files.url"), ("sb", "service_role_key"), ("fb", "options.storage.buckets")]:
        with pytest.raises(ConfigInvalid) as info:
            file_store(cfg, name)
        assert info.value.code == "BACKEND_002" and hint in str(info.value)
    with file_store(cfg, "on_disk") as files:
        assert isinstance(files, FsspecFileStore)
        files.upload("b1", "x/y.txt", b"on disk")
    assert (tmp_path / "f" / "b1" / "x" / "y.txt").read_bytes() == b"on disk"
    with pytest.raises(ConfigInvalid, match="options.files"):
        config(write_config(tmp_path, {"m": {"kind": "memory", "options": {"files": {"path": "/x"}}}}))


def test_an_fsspec_root_holds_buckets_as_folders_and_reads_files_it_did_not_write(tmp_path: Path) -> None:
    cfg = config(write_config(tmp_path, {
        "disk": {"kind": "sqlite", "url": "sqlite:///app.db", "options": {"files": {"url": f"file://{tmp_path}/f"}}},
        "mem": {"kind": "memory", "options": {"files": {"url": "memory://"}}}}))
    with file_store(cfg, "disk") as files:
        files.upload("b", "x/one.json", b"{}", metadata={"k": "v"})
        (tmp_path / "f" / "b" / "x" / "two.csv").write_bytes(b"a,b\n1,2\n")  # put there by another program
        assert [f.path for f in files.list("b")] == ["x/one.json", "x/two.csv"]  # the metadata folder is not listed
        two = files.info("b", "x/two.csv")
        assert (two.size, two.content_type, two.metadata) == (8, "text/csv", {}) and two.etag and two.updated
        (tmp_path / "f" / "b" / "x" / "one.json").write_bytes(b'{"changed": 1}')  # rewritten behind its back
        one = files.info("b", "x/one.json")
        assert one.size == 14 and one.metadata == {"k": "v"}
        with pytest.raises(UnsupportedValue, match="limit >= 0"):
            files.list("b", offset=-1)
    with file_store(cfg, "mem") as files:  # the filesystem's root itself
        bucket = f"m{uuid.uuid4().hex[:8]}"
        files.upload(bucket, "a.txt", b"1")
        assert [f.path for f in files.list(bucket)] == ["a.txt"] and files.download(bucket, "a.txt") == b"1"
        assert files.delete(bucket, ["a.txt"]) == 1 and files.list(bucket) == []


def test_firebase_signs_upload_urls_with_a_service_account_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing is local (V4, the key's RSA signature): proven offline with a key made here. Whether Google accepts the
    URL is not tested (no network); the signature is checked against the key's public half."""
    import hashlib
    import json
    import urllib.parse

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    for var in ("FIREBASE_STORAGE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    account = tmp_path / "sa.json"
    account.write_text(json.dumps({"type": "service_account", "project_id": "demo-sign", "private_key_id": "k1",
                                   "private_key": pem, "client_email": "app@demo-sign.iam.gserviceaccount.com",
                                   "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    cfg = config(write_config(tmp_path, {"fb": {"kind": "firestore", "url": "firestore://demo-sign", "options": {
        "credentials_file": str(account), "storage": {"buckets": ["demo-sign.appspot.com"]}}}}))
    with file_store(cfg, "fb") as files:
        url = files.signed_upload_url("demo-sign.appspot.com", "in/new file.bin", 600)
    parsed = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    assert (parsed.scheme, parsed.netloc, urllib.parse.unquote(parsed.path)) == \
        ("https", "storage.googleapis.com", "/demo-sign.appspot.com/in/new file.bin")
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and query["X-Goog-Expires"] == "600"
    assert query["X-Goog-Credential"].startswith("app@demo-sign.iam.gserviceaccount.com/")
    canonical = "\n".join(["PUT", parsed.path, "&".join(p for p in parsed.query.split("&")
                                                          if not p.startswith("X-Goog-Signature=")),
                           "host:storage.googleapis.com", "", "host", "UNSIGNED-PAYLOAD"])
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key.public_key().verify(bytes.fromhex(query["X-Goog-Signature"]), to_sign.encode(), padding.PKCS1v15(),
                            hashes.SHA256())  # raises InvalidSignature otherwise
