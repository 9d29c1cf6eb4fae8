"""Firebase Storage objects as the collections `storage/<bucket>` of a Firebase provider (kind firestore).

Turned on by options.storage in backends.yaml:

    options:
      storage:
        buckets: [my-project.appspot.com]   # the app's buckets: these are listed as collections
        emulator_host: 127.0.0.1:9199       # else FIREBASE_STORAGE_EMULATOR_HOST or STORAGE_EMULATOR_HOST;
                                            #   production uses options.credentials_file (or default credentials)

Objects are read and written with google-cloud-storage (installed with firebase-admin) through the Cloud Storage JSON
API, which Firebase Storage serves and which security rules do not govern. Records follow adapters.userfiles: the key
is the object name, scans list names in key order from a start offset (GCS lists by UTF-8 bytes, which is Python's
order on str) and download the content of the listed page only; count and key boundaries come from the listing
alone. upsert uploads with the content type and the custom metadata (replacing the object's metadata); delete
ignores objects that are gone.

What Firebase Storage cannot keep: custom metadata values are text, so a record whose metadata holds another value is
refused (UnsupportedValue) rather than written changed. What a record does not carry from Firebase: download tokens
(`firebaseStorageDownloadTokens`, left out of `metadata`: URLs from getDownloadURL() do not survive a move), cache
control, content disposition/encoding/language, generations, storage class and ACLs.

Other bucket names are served too (the emulator and GCS create no bucket through this API: a missing bucket reads as
empty and refuses writes); `drop_collection` empties such a bucket and refuses to touch a configured one.

`FirebaseStorageFiles` is mixed into FirestoreAdapter, as adapters.firestore.auth's FirebaseAuthUsers is for users.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shiftover.adapters.base import Adapter, Capabilities, CollectionSchema, Filter, Key, KeyRange, Record
from shiftover.adapters.errors import (
    AuthenticationFailed,
    BackendError,
    CollectionNotFound,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
)
from shiftover.adapters.query import Order
from shiftover.adapters.userfiles import FieldLimits, bucket_of, file_record, files_schema, find_files

DOWNLOAD_TOKENS = "firebaseStorageDownloadTokens"
_NOT_CARRIED = (f"download tokens ({DOWNLOAD_TOKENS}: getDownloadURL() links)", "cache_control",
                "content_disposition", "content_encoding", "content_language", "generation", "storage class", "ACLs")


class StorageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buckets: list[str] = Field(min_length=1, description="the buckets listed as collections storage/<bucket>")
    emulator_host: str | None = Field(None, description="host:port of the Storage emulator")
    page_size: int = Field(500, ge=1, le=1000, description="object names per list call")
    timeout_s: float = Field(30.0, gt=0)


class FirebaseFiles:
    """Objects in a Firebase project's buckets, through google-cloud-storage."""

    def __init__(self, provider: str, project: str, options: StorageOptions,
                 credentials_file: SecretStr | None) -> None:
        self.provider, self.project, self.options = provider, project, options
        self.credentials_file = credentials_file
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from google.auth.credentials import AnonymousCredentials
                from google.cloud import storage
            except ModuleNotFoundError:
                raise DriverMissing("google-cloud-storage is not installed",
                                    hint="pip install firebase-admin") from None
            emulator = self.emulator
            with self.errors():
                if emulator:
                    endpoint = emulator if "://" in emulator else f"http://{emulator}"
                    self._client = storage.Client(project=self.project, credentials=AnonymousCredentials(),
                                                  client_options={"api_endpoint": endpoint.rstrip("/")})
                elif self.credentials_file is not None:
                    from google.oauth2 import service_account

                    creds = service_account.Credentials.from_service_account_file(
                        self.credentials_file.get_secret_value())
                    self._client = storage.Client(project=self.project, credentials=creds)
                else:
                    self._client = storage.Client(project=self.project)
        return self._client

    @property
    def emulator(self) -> str | None:
        """host:port of the Storage emulator this client talks to, if it does."""
        return (self.options.emulator_host or os.environ.get("FIREBASE_STORAGE_EMULATOR_HOST")
                or os.environ.get("STORAGE_EMULATOR_HOST"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def _rpc(self) -> dict[str, Any]:
        """Per-call deadline: the client's default retries an unreachable server for two minutes."""
        from google.api_core.retry import Retry

        t = self.options.timeout_s
        return {"retry": Retry(initial=0.1, maximum=1.0, timeout=t), "timeout": t}

    @contextmanager
    def errors(self) -> Iterator[None]:
        import requests
        from google.api_core import exceptions as ge
        from google.auth import exceptions as auth_errors

        try:
            yield
        except BackendError:
            raise
        except (ge.DeadlineExceeded, ge.GatewayTimeout, ge.RetryError, requests.Timeout) as exc:
            raise ConnectionTimeout(f"Firebase Storage did not answer in time: {_text(exc)}", hint="retry",
                                    provider=self.provider) from None
        except (ge.ServiceUnavailable, ge.InternalServerError, ge.TooManyRequests, ge.BadGateway,
                requests.ConnectionError) as exc:
            raise ProviderUnavailable(f"Firebase Storage is unavailable: {_text(exc)}", hint="retry",
                                      provider=self.provider) from None
        except (ge.Unauthorized, ge.Forbidden, auth_errors.GoogleAuthError) as exc:
            raise AuthenticationFailed(f"Firebase Storage refused the credentials: {_text(exc)}",
                                       hint="options.credentials_file needs storage.objects.* on the bucket",
                                       provider=self.provider) from None
        except ge.NotFound as exc:
            raise CollectionNotFound(f"Firebase Storage: {_text(exc)}", hint="check options.storage.buckets",
                                     provider=self.provider) from None
        except ge.GoogleAPICallError as exc:
            raise InvalidRequest(f"Firebase Storage refused the request: {_text(exc)}",
                                 provider=self.provider) from None
        except (ValueError, TypeError) as exc:
            raise UnsupportedValue(f"Firebase Storage cannot take the value: {_text(exc)}",
                                   provider=self.provider) from None

    # -- collection calls ----------------------------------------------------------------------------------------------
    def names(self, bucket: str, *, after: str | None = None, until: str | None = None,
              limit: int | None = None) -> list[str]:
        """Object names with after < name <= until in key order, at most `limit` (None: all), from listings only."""
        out: list[str] = []
        with self.errors():
            blobs = self.client.list_blobs(bucket, start_offset=after, page_size=self.options.page_size,
                                           fields="items(name),nextPageToken", **self._rpc)
            for blob in blobs:
                if after is not None and blob.name <= after:
                    continue
                if (until is not None and blob.name > until) or (limit is not None and len(out) >= limit):
                    break
                out.append(blob.name)
        return sorted(out)

    def read(self, bucket: str, path: str) -> Record | None:
        from google.api_core import exceptions as ge

        with self.errors():
            try:
                blob = self.client.bucket(bucket).get_blob(path, **self._rpc)
                content = blob.download_as_bytes(**self._rpc) if blob is not None else None
            except ge.NotFound:  # deleted between listing and reading
                return None
        if blob is None or content is None:
            return None
        metadata = {k: v for k, v in (blob.metadata or {}).items() if k != DOWNLOAD_TOKENS}
        return file_record(path, content, blob.content_type, metadata)

    def scan(self, bucket: str, *, after: Key | None, until: Key | None, limit: int) -> list[Record]:
        paths = self.names(bucket, after=_path(after), until=_path(until), limit=limit)
        return [r for r in (self.read(bucket, p) for p in paths) if r is not None]

    def upsert(self, bucket: str, records: Sequence[Record]) -> int:
        with self.errors():
            target = self.client.bucket(bucket)
            for rec in records:
                blob = target.blob(_object_path(rec, self.provider))
                blob.metadata = _text_metadata(rec, self.provider) or None
                blob.upload_from_string(bytes(rec.get("content") or b""),
                                        content_type=rec.get("content_type") or "application/octet-stream",
                                        timeout=self.options.timeout_s)
        return len(records)

    def delete(self, bucket: str, keys: Sequence[Key]) -> int:
        from google.api_core import exceptions as ge

        gone = 0
        with self.errors():
            target = self.client.bucket(bucket)
            for key in keys:
                try:
                    target.blob(str(key[0])).delete(**self._rpc)
                    gone += 1
                except ge.NotFound:
                    pass
        return gone


class FirebaseStorageFiles(Adapter):
    """Mixed into FirestoreAdapter: `storage/<bucket>` collections (when options.storage is set) beside its others;
    every other name goes on to the next class."""

    options: Any  # the host's Options: storage, project, credentials_file

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._files: FirebaseFiles | None = None

    def narrowed(self, offers: Capabilities) -> Capabilities:
        return replace(super().narrowed(offers), storage=self.options.storage is not None)

    @property
    def files(self) -> FirebaseFiles:
        if self.options.storage is None:
            raise InvalidRequest("storage/<bucket> collections need options.storage on this Firebase provider",
                                 hint="add options.storage.buckets (and emulator_host, or credentials_file)",
                                 provider=self.name)
        if self._files is None:
            project = self.options.project or (self.url or "").removeprefix("firestore://").strip("/")
            self._files = FirebaseFiles(self.name, project, self.options.storage, self.options.credentials_file)
        return self._files

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None
        super().close()

    def _probe(self, *, canary: bool) -> list[str]:
        checks = super()._probe(canary=canary)
        if self.options.storage is not None:  # one small listing: a dead Storage is a sick Firebase
            self.files.names(self.options.storage.buckets[0], limit=1)
            checks.append("storage")
        return checks

    def collections(self) -> list[str]:
        names = super().collections()
        return names + [f"storage/{b}" for b in self.options.storage.buckets] if self.options.storage else names

    def schema(self, name: str) -> CollectionSchema:
        if bucket_of(name) is not None:
            self.files  # noqa: B018 - refuses without options.storage
            return files_schema(name)
        return super().schema(name)

    def create_collection(self, schema: CollectionSchema) -> None:
        if bucket_of(schema.name) is None:  # a bucket is made in the Firebase console, not through this API
            super().create_collection(schema)

    def drop_collection(self, name: str) -> None:
        bucket = bucket_of(name)
        if bucket is None:
            return super().drop_collection(name)
        if bucket in self.files.options.buckets:
            raise InvalidRequest(f"Shiftover does not empty the app's bucket {bucket!r}",
                                 hint="delete objects by key", provider=self.name)
        self.files.delete(bucket, [(p,) for p in self.files.names(bucket)])

    def count(self, name: str) -> int:
        bucket = bucket_of(name)
        return len(self.files.names(bucket)) if bucket is not None else super().count(name)

    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None,
             limit: int = 1000) -> list[Record]:
        bucket = bucket_of(name)
        if bucket is not None:
            return self.files.scan(bucket, after=after, until=until, limit=limit)
        return super().scan(name, after=after, until=until, limit=limit)

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        bucket = bucket_of(name)
        if bucket is not None:  # from the listing: a scan would download every object
            return [(p,) for p in self.files.names(bucket)[every - 1::every]]
        return super().key_boundaries(name, every)

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        bucket = bucket_of(name)
        if bucket is None:
            return super().replace_range(name, rng, records)
        wanted = {str(r["path"]) for r in records}
        stale = [(p,) for p in self.files.names(bucket, after=_path(rng.lo), until=_path(rng.hi))
                 if p not in wanted]
        if stale:
            self.files.delete(bucket, stale)
        return self.files.upsert(bucket, records)

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        if bucket_of(name) is not None:
            raise InvalidRequest("Shiftover does not list Firebase Storage objects by change time",
                                 hint="migrate files with --strategy immediate", provider=self.name)
        return super().changes(name, since=since, limit=limit)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        bucket = bucket_of(name)
        return self.files.upsert(bucket, records) if bucket is not None else super().upsert(name, records)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        bucket = bucket_of(name)
        return self.files.delete(bucket, keys) if bucket is not None else super().delete(name, keys)

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        bucket = bucket_of(name)
        if bucket is None:
            return super().find(name, where, order_by=order_by, limit=limit, offset=offset)
        return find_files(where, order_by, limit, offset, lambda: self.files.names(bucket),
                          lambda path: self.files.read(bucket, path))

    def capture_start(self, names: Sequence[str]) -> None:
        if any(bucket_of(n) is not None for n in names):
            return Adapter.capture_start(self, names)
        super().capture_start(names)

    def field_limits(self, name: str) -> FieldLimits:
        if bucket_of(name) is None:
            return super().field_limits(name)
        return FieldLimits(not_carried=_NOT_CARRIED)


def _path(key: Key | None) -> str | None:
    return None if key is None else str(key[0])


def _object_path(rec: Record, provider: str) -> str:
    path = str(rec.get("path") or "")
    if not path or path.startswith("/") or path.endswith("/") or len(path.encode()) > 1024:
        raise UnsupportedValue(f"{path[:200]!r} cannot be a Firebase Storage object path", provider=provider)
    return path


def _text_metadata(rec: Record, provider: str) -> dict[str, str]:
    """Custom metadata as Firebase keeps it: text values only. Anything else is refused, never written changed."""
    metadata = rec.get("metadata") or {}
    other = sorted(k for k, v in metadata.items() if not isinstance(v, str))
    if other:
        raise UnsupportedValue(f"object {rec.get('path')!r} has metadata that is not text ({', '.join(other)}): "
                               "Firebase Storage custom metadata holds only text values",
                               hint="store those values as text on the source first", provider=provider)
    return dict(metadata)


def _text(exc: BaseException) -> str:
    return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, [])[:500]
