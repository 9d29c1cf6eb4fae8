"""Supabase and Firebase Auth fixtures.

- `supabase_fake` / `supabase_fake2`: local HTTP fakes of Supabase Auth (GoTrue admin API) and Storage that answer
  the request paths and shapes supabase-py 2.x sends (read from supabase_auth/_sync/gotrue_admin_api.py and
  storage3/_sync/{bucket,file_api}.py) and keep state, so a test can migrate users and files into one and read them
  back. They check the `apikey` and `Authorization: Bearer` headers, answer errors in GoTrue's and Storage's JSON
  shapes, keep imported password hashes the way GoTrue does (stored, never returned), and record every request.
  Storage's signed URLs too: `POST /object/sign/...` and `/object/upload/sign/...` answer a path with a token, which
  alone (no key) lets a GET download or a PUT upload that one object until it expires.
- `firebase_auth`: the Firebase Auth emulator from the npm package firebase-tools, one per session, emptied per test.
  firebase-tools is installed into .cache/firebase-tools on first use (npm needed; skipped with a reason otherwise).
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_docstores import _free_port, emulator_process

ROOT = Path(__file__).resolve().parent.parent
FIREBASE_TOOLS = ROOT / ".cache" / "firebase-tools"
FIREBASE_PROJECT = "demo-shiftover"
SERVICE_KEY = "sb-service-role-" + uuid.uuid4().hex  # a fresh secret per session: tests look for it in outputs

_HASH = re.compile(r"^(\$2[aby]?\$\d\d\$.{53}|\$argon2(id|i|d)\$.+|"
                   r"\$fbscrypt\$v=1,n=\d+,r=\d+,p=\d+(,ss=[A-Za-z0-9+/=]+)?"
                   r"(,sk=[A-Za-z0-9+/=]+)?\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+)$")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class FakeUser:
    data: dict[str, Any]
    encrypted_password: str | None = None  # GoTrue's column: stored, never in an API response


@dataclass
class FakeObject:
    content: bytes
    content_type: str
    cache_control: str
    user_metadata: dict[str, Any]
    created_at: str = field(default_factory=_now)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class _Fail(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _ok(out: Any) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()


def _missing(what: str) -> _Fail:
    return _Fail(404, {"statusCode": "404", "error": "not_found", "message": f"{what} not found"})


class SupabaseFake:
    """State of one fake Supabase project, and the server answering for it."""

    def __init__(self, key: str = SERVICE_KEY) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.users: dict[str, FakeUser] = {}
        self.buckets: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, FakeObject]] = {}
        self.requests: list[tuple[str, str]] = []
        self.tokens: dict[str, tuple[str, float, bool]] = {}  # signed URL token -> (route, expiry, upsert)
        self.fail_next: list[int] = []  # statuses to answer instead of the next requests (outage tests)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = fake.handle(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.users.clear()
            self.buckets.clear()
            self.objects.clear()
            self.requests.clear()
            self.fail_next.clear()
            self.tokens.clear()

    # -- dispatch ----------------------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        parsed = urllib.parse.urlsplit(raw_path)
        path, query = urllib.parse.unquote(parsed.path), dict(urllib.parse.parse_qsl(parsed.query))
        with self.lock:
            self.requests.append((method, raw_path))
            try:
                if self.fail_next:
                    raise _Fail(self.fail_next.pop(0), {"code": "unexpected_failure", "msg": "injected failure",
                                                        "statusCode": "503", "error": "Unavailable",
                                                        "message": "injected failure"})
                lower = {k.lower(): v for k, v in headers.items()}
                if path.startswith(("/storage/v1/object/sign/", "/storage/v1/object/upload/sign/")) and \
                        method in ("GET", "PUT") and "token" in query:  # a signed URL: the token is the credential
                    return self._signed(method, path[len("/storage/v1/"):], query["token"], lower, body)
                if lower.get("apikey") != self.key or lower.get("authorization") != f"Bearer {self.key}":
                    raise _Fail(401, {"code": "no_authorization", "msg": "This endpoint requires a valid Bearer token",
                                      "statusCode": "401", "error": "Unauthorized", "message": "invalid JWT"})
                if path.startswith("/auth/v1/"):
                    status, out = self._auth(method, path[len("/auth/v1/"):], query, body)
                    return status, {"Content-Type": "application/json", "X-Supabase-Api-Version": "2024-01-01"}, \
                        json.dumps(out).encode()
                if path.startswith("/storage/v1/"):
                    return self._storage(method, path[len("/storage/v1/"):], lower, body)
                raise _Fail(404, {"message": "no route", "error": "not_found", "statusCode": "404"})
            except _Fail as fail:
                return fail.status, {"Content-Type": "application/json", "X-Supabase-Api-Version": "2024-01-01"}, \
                    json.dumps(fail.body).encode()

    # -- GoTrue admin ------------------------------------------------------------------------------------------------
    def _auth(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        data = json.loads(body) if body else {}
        if path == "admin/users" and method == "GET":
            page, per_page = int(query.get("page") or 1), int(query.get("per_page") or 50)
            users = sorted(self.users.values(), key=lambda u: (u.data["created_at"], u.data["id"]))
            chunk = users[(page - 1) * per_page: page * per_page]
            return 200, {"users": [u.data for u in chunk], "aud": "authenticated"}
        if path == "admin/users" and method == "POST":
            return 200, self._create_user(data)
        match = re.fullmatch(r"admin/users/([^/]+)", path)
        if match:
            user = self.users.get(match[1])
            if user is None:
                raise _Fail(404, {"code": "user_not_found", "msg": "User not found"})
            if method == "GET":
                return 200, user.data
            if method == "PUT":
                self._update_user(user, data)
                return 200, user.data
            if method == "DELETE":
                del self.users[match[1]]
                return 200, {}
        raise _Fail(404, {"code": "not_found", "msg": f"no route {method} {path}"})

    def _create_user(self, data: dict[str, Any]) -> dict[str, Any]:
        user_id = data.get("id") or str(uuid.uuid4())
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise _Fail(400, {"code": "validation_failed", "msg": "id must be a UUID"}) from None
        if user_id in self.users:
            raise _Fail(422, {"code": "user_already_exists", "msg": "User already registered"})
        email = data.get("email")
        if email and any(u.data["email"] == email.lower() for u in self.users.values()):
            raise _Fail(422, {"code": "email_exists", "msg": "A user with this email address has already been "
                                                            "registered"})
        now = _now()
        user = FakeUser({"id": user_id, "aud": "authenticated", "role": "authenticated", "email": "", "phone": "",
                         "email_confirmed_at": None, "phone_confirmed_at": None, "confirmed_at": None,
                         "last_sign_in_at": None, "app_metadata": {"provider": "email", "providers": ["email"]},
                         "user_metadata": {}, "identities": [], "created_at": now, "updated_at": now,
                         "is_anonymous": False})
        self._update_user(user, data)
        self.users[user_id] = user
        return user.data

    def _update_user(self, user: FakeUser, data: dict[str, Any]) -> None:
        u = user.data
        if "password_hash" in data:
            if not _HASH.match(data["password_hash"] or ""):
                raise _Fail(400, {"code": "validation_failed", "msg": "Invalid password hash format"})
            user.encrypted_password = data["password_hash"]
        elif data.get("password"):
            user.encrypted_password = "$2a$10$" + hashlib.sha256(data["password"].encode()).hexdigest()[:53]
        if data.get("email"):
            u["email"] = data["email"].lower()
        if data.get("phone"):
            u["phone"] = data["phone"]
        if data.get("email_confirm"):
            u["email_confirmed_at"] = u["email_confirmed_at"] or _now()
            u["confirmed_at"] = u["confirmed_at"] or u["email_confirmed_at"]
        if data.get("phone_confirm"):
            u["phone_confirmed_at"] = u["phone_confirmed_at"] or _now()
        for name in ("app_metadata", "user_metadata"):  # GoTrue merges; a null value removes the key
            for k, v in (data.get(name) or {}).items():
                if v is None:
                    u[name].pop(k, None)
                else:
                    u[name][k] = v
        ban = data.get("ban_duration")
        if ban == "none":
            u.pop("banned_until", None)
        elif ban:
            hours = re.fullmatch(r"(\d+)h", ban)
            if not hours:
                raise _Fail(400, {"code": "validation_failed", "msg": "invalid format for ban duration"})
            until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=int(hours[1]))
            u["banned_until"] = until.isoformat().replace("+00:00", "Z")
        u["updated_at"] = _now()

    # -- Storage -----------------------------------------------------------------------------------------------------
    def _storage(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        data = json.loads(body) if body and "json" in headers.get("content-type", "") else {}
        answer = self._storage_buckets(method, path, data)
        return answer if answer is not None else self._storage_objects(method, path, headers, body, data)

    def _storage_buckets(self, method: str, path: str, data: dict) -> tuple[int, dict, bytes] | None:
        ok, missing = _ok, _missing
        if path.rstrip("/") == "bucket":
            if method == "GET":
                return ok(list(self.buckets.values()))
            if data["id"] in self.buckets:
                raise _Fail(409, {"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"})
            now = _now()
            self.buckets[data["id"]] = {"id": data["id"], "name": data.get("name") or data["id"], "owner": "",
                                        "public": bool(data.get("public")), "created_at": now, "updated_at": now,
                                        "file_size_limit": None, "allowed_mime_types": None}
            self.objects[data["id"]] = {}
            return ok({"name": data["id"]})
        match = re.fullmatch(r"bucket/([^/]+)", path)
        if match and method == "DELETE":
            if match[1] not in self.buckets:
                raise missing("Bucket")
            if self.objects[match[1]]:
                raise _Fail(409, {"statusCode": "409", "error": "InvalidRequest", "message": "The bucket you tried to "
                                  "delete is not empty"})
            del self.buckets[match[1]], self.objects[match[1]]
            return ok({"message": "Successfully deleted"})
        return None

    def _storage_objects(self, method: str, path: str, headers: dict[str, str], body: bytes,
                         data: dict) -> tuple[int, dict, bytes]:
        ok, missing = _ok, _missing
        match = re.fullmatch(r"object/list/([^/]+)", path)
        if match and method == "POST":
            return ok(self._list(self._bucket(match[1]), data))
        match = re.fullmatch(r"object/info/([^/]+)/(.+)", path)
        if match and method == "GET":
            obj = self._bucket(match[1]).get(match[2])
            if obj is None:
                raise missing("Object")
            return ok({"id": obj.id, "version": obj.id, "name": match[2], "bucket_id": match[1],
                       "size": len(obj.content), "content_type": obj.content_type, "cache_control": obj.cache_control,
                       "etag": f'"{hashlib.md5(obj.content).hexdigest()}"', "metadata": obj.user_metadata,
                       "last_modified": obj.created_at, "created_at": obj.created_at})
        match = re.fullmatch(r"object/(upload/)?sign/([^/]+)/(.+)", path)
        if match and method == "POST":  # signed URLs: Storage answers with a path relative to /storage/v1
            if not match[1] and match[3] not in self._bucket(match[2]):
                raise missing("Object")
            self._bucket(match[2])
            token = uuid.uuid4().hex
            expires = int(data.get("expiresIn") or 0) if not match[1] else 7200  # upload URLs: two hours, fixed
            self.tokens[token] = (path, time.time() + expires, headers.get("x-upsert") == "true")
            url = f"/{urllib.parse.quote(path)}?token={token}"
            return ok({"url": url, "token": token} if match[1] else {"signedURL": url})
        match = re.fullmatch(r"object/([^/]+)", path)
        if match and method == "DELETE":
            objects, deleted = self._bucket(match[1]), []
            for prefix in data.get("prefixes", []):
                obj = objects.pop(prefix, None)
                if obj is not None:
                    deleted.append({"name": prefix, "bucket_id": match[1], "id": obj.id})
            return ok(deleted)
        match = re.fullmatch(r"object/([^/]+)/(.+)", path)
        if match and method == "GET":
            obj = self._bucket(match[1]).get(match[2])
            if obj is None:
                raise missing("Object")
            return 200, {"Content-Type": obj.content_type}, obj.content
        if match and method in ("POST", "PUT"):
            objects = self._bucket(match[1])
            if method == "POST" and match[2] in objects and headers.get("x-upsert") != "true":
                raise _Fail(409, {"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"})
            if method == "PUT" and match[2] not in objects:
                raise missing("Object")
            form = _multipart(headers.get("content-type", ""), body)
            content, ctype = form["file"]
            objects[match[2]] = FakeObject(content, ctype, form.get("cacheControl", (b"", ""))[0].decode(),
                                           json.loads(form["metadata"][0]) if "metadata" in form else {})
            return ok({"Key": f"{match[1]}/{match[2]}", "Id": objects[match[2]].id})
        raise missing(f"route {method} {path}")

    def _signed(self, method: str, path: str, token: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict, bytes]:
        """GET of a signed download URL, PUT to a signed upload URL (multipart with a `file` field, or raw bytes)."""
        route, expires, upsert = self.tokens.get(token, ("", 0.0, False))
        if route != path or time.time() > expires or (method == "PUT") != path.startswith("object/upload/"):
            raise _Fail(400, {"statusCode": "400", "error": "InvalidJWT",
                              "message": "invalid signature or jwt expired"})
        bucket, name = path.removeprefix("object/upload/").removeprefix("object/").removeprefix("sign/").split("/", 1)
        objects = self._bucket(bucket)
        if method == "GET":
            if name not in objects:
                raise _missing("Object")
            return 200, {"Content-Type": objects[name].content_type}, objects[name].content
        if name in objects and not upsert:
            raise _Fail(409, {"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"})
        ctype = headers.get("content-type", "application/octet-stream")
        content = _multipart(ctype, body)["file"] if ctype.startswith("multipart/") else (body, ctype)
        objects[name] = FakeObject(content[0], content[1], "3600", {})
        return _ok({"Key": f"{bucket}/{name}", "Id": objects[name].id})

    def _bucket(self, bucket: str) -> dict[str, FakeObject]:
        if bucket not in self.buckets:
            raise _Fail(404, {"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"})
        return self.objects[bucket]

    def _list(self, objects: dict[str, FakeObject], data: dict[str, Any]) -> list[dict[str, Any]]:
        """Storage's v1 list: one folder level under `prefix`, folders as entries whose id is null, by name."""
        prefix = data.get("prefix") or ""
        prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix
        entries: dict[str, dict[str, Any]] = {}
        for name, obj in objects.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest:
                folder = rest.split("/", 1)[0]
                entries.setdefault(folder, {"name": folder, "id": None, "updated_at": None, "created_at": None,
                                            "last_accessed_at": None, "metadata": None})
            else:
                entries[rest] = {"name": rest, "id": obj.id, "updated_at": obj.created_at,
                                 "created_at": obj.created_at, "last_accessed_at": obj.created_at,
                                 "metadata": {"eTag": f'"{hashlib.md5(obj.content).hexdigest()}"',
                                              "size": len(obj.content), "mimetype": obj.content_type,
                                              "cacheControl": f"max-age={obj.cache_control}",
                                              "lastModified": obj.created_at, "contentLength": len(obj.content),
                                              "httpStatusCode": 200}}
        ordered = [entries[k] for k in sorted(entries)]
        offset, limit = int(data.get("offset") or 0), int(data.get("limit") or 100)
        return ordered[offset:offset + limit]


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str]]:
    """multipart/form-data fields: name -> (bytes, content type)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_payload(decode=True) or b"", part.get_content_type())
    return out


@pytest.fixture(scope="session")
def _supabase_servers() -> Iterator[list[SupabaseFake]]:
    fakes = [SupabaseFake(), SupabaseFake()]
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture
def supabase_fake(_supabase_servers: list[SupabaseFake]) -> SupabaseFake:
    """A fake Supabase project (Auth admin + Storage), emptied for this test."""
    _supabase_servers[0].reset()
    return _supabase_servers[0]


@pytest.fixture
def supabase_fake2(_supabase_servers: list[SupabaseFake]) -> SupabaseFake:
    """A second fake Supabase project, for project → project migrations."""
    _supabase_servers[1].reset()
    return _supabase_servers[1]


# -- Firebase Auth emulator -------------------------------------------------------------------------------------------
FIREBASE_INSTALL = f"npm install --prefix {FIREBASE_TOOLS} --no-audit --no-fund firebase-tools"


def firebase_cli() -> Path:
    return FIREBASE_TOOLS / "node_modules" / ".bin" / "firebase"


@dataclass(frozen=True)
class FirebaseAuthEmulator:
    host: str  # "127.0.0.1:PORT"
    project: str

    def reset(self) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{self.project}/accounts"
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30) as resp:
            assert resp.status == 200


@pytest.fixture(scope="session")
def firebase_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirebaseAuthEmulator]:
    if not firebase_cli().exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("the Firebase Auth emulator needs Node.js and npm (firebase-tools); neither is on PATH")
        FIREBASE_TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(FIREBASE_INSTALL.split(), capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not firebase_cli().exists():
            pytest.skip(f"`{FIREBASE_INSTALL}` failed: {done.stderr.strip().splitlines()[-1:]}")
    port, hub, logging = _free_port(), _free_port(), _free_port()  # the hub's default 4400 may be taken
    work = tmp_path_factory.mktemp("firebase-auth")
    (work / "firebase.json").write_text(json.dumps(
        {"emulators": {"auth": {"host": "127.0.0.1", "port": port}, "ui": {"enabled": False},
                       "hub": {"host": "127.0.0.1", "port": hub}, "logging": {"host": "127.0.0.1", "port": logging},
                       "singleProjectMode": True}}))
    env = {**os.environ, "FIREBASE_CLI_EXPERIMENTS": "", "FIREBASE_SKIP_UPDATE_CHECK": "1"}
    with emulator_process([str(firebase_cli()), "emulators:start", "--only", "auth", "--project", FIREBASE_PROJECT],
                          name="Firebase Auth emulator", ready_url=f"http://127.0.0.1:{port}/",
                          log_path=work / "emulator.log", timeout=90, cwd=work, env=env):
        yield FirebaseAuthEmulator(f"127.0.0.1:{port}", FIREBASE_PROJECT)


@pytest.fixture
def firebase_auth(firebase_auth_server: FirebaseAuthEmulator) -> FirebaseAuthEmulator:
    """The session's Firebase Auth emulator, emptied for this test."""
    firebase_auth_server.reset()
    return firebase_auth_server
