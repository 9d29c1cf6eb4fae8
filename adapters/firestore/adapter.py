"""Cloud Firestore through google-cloud-firestore (installed with firebase-admin). URL: `firestore://PROJECT` (or
options.project); options.credentials_file is a service-account JSON file (default: application default credentials);
options.emulator_host (else FIRESTORE_EMULATOR_HOST) talks to the emulator with anonymous credentials.

Collections and keys:
- A root collection `users` has the key `("id",)`: the document id. A subcollection is its own collection named by its
  path pattern, e.g. `users/{uid}/orders`, keyed `("uid", "id")`; its records carry the parent's id as the field
  `uid`, taken from the document's path (not stored in the document).
- Document ids are strings, so key values are strings: an integer key from SQL becomes the id "42" and reads back as
  "42". Scans run in document-id order, which is Python's order on those strings (zero-pad numeric ids to keep a
  numeric order). Ids containing "/" are refused.
- Firestore cannot tell an empty collection from a missing one: `create_collection` keeps the schema in
  `_shiftover_schemas`, so created collections exist while empty; other collections are inferred from a sample of
  `options.sample_size` documents, and `options.schemas` ({collection: {field: type}}) overrides field types.

Mapping (canonical ↔ Firestore), lossless both ways:
- Timestamp (DatetimeWithNanoseconds) ↔ UTC datetime (Firestore keeps microseconds).
- DocumentReference ↔ `{"__ref__": "users/u1"}`; GeoPoint ↔ `{"__geopoint__": {"latitude": .., "longitude": ..}}`.
- Decimal ↔ `{"@decimal": "12.5"}` (exact text, trailing zeros dropped; Firestore has no decimal type; such fields
  filter by equality only). date ↔ `{"@date": "2024-02-01"}`. bytes ↔ bytes; maps and arrays both ways.
  Maps whose only key is one of these markers are reserved.

Writes go in WriteBatches of up to 500 and merge by top-level field (like the SQL adapters' upsert); every write also
stamps `_shiftover_updated_at` with the server's commit time, and changes(since) orders by it (or by
options.updated_at_field, a field the application maintains). Firestore cannot order by its own update_time.
transaction(): the block's writes are buffered and committed in one atomic batch (at most 500); reads inside see
committed data, not the block's own writes. There is no engine-side write freeze (that would take security rules):
the router enforces freezes for Firestore.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Self

from pydantic import Field, SecretStr

from shiftover.adapters import canonical
from shiftover.adapters.base import (
    Adapter,
    Capabilities,
    CollectionSchema,
    Key,
    KeyRange,
    Record,
)
from shiftover.adapters.errors import (
    AuthenticationFailed,
    BackendError,
    ConfigInvalid,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
)
from shiftover.adapters.firestore.auth import AuthOptions, FirebaseAuthUsers
from shiftover.adapters.firestore.catalogue import DocumentCatalogue
from shiftover.adapters.firestore.query import DocumentQueries
from shiftover.adapters.firestore.storage import FirebaseStorageFiles, StorageOptions
from shiftover.adapters.firestore.values import DocumentValues
from shiftover.adapters.firestore.wire import STAMP, WireCodec, add_raw_write, wire

# Documents per query in scan(): one stream per page, each with a deadline of timeout_s or _PAGE_S_PER_DOC per document
# (a whole 50k-document stream outlasts any sane deadline). Pages are large because every query has a start-up cost
# that grows with the collection (the emulator: ~0.3 s per query on 50k documents; 2,000-document pages halved reads).
_SCAN_PAGE = 10_000
_KEYS_PAGE = 10_000  # document names per keys-only query in key_boundaries() (subcollections)
_PAGE_S_PER_DOC = 0.002


class FirestoreDocuments(DocumentQueries, DocumentCatalogue, DocumentValues, WireCodec, Adapter):
    """Firestore's own collections of documents; FirestoreAdapter (below) adds users and files to it."""

    kind = "firestore"
    offers = Capabilities(transactions=True, change_feed="update stamp (server commit time)")

    class Options(Adapter.Options):
        project: str | None = None
        database: str = "(default)"
        credentials_file: SecretStr | None = None
        emulator_host: str | None = None
        sample_size: int = Field(200, ge=1, description="documents read to infer a collection's schema")
        schemas: dict[str, dict[str, str]] = Field(default_factory=dict, description="field type overrides")
        updated_at_field: str | None = Field(None, description="field that tells changes(since); default: stamped")
        batch_size: int = Field(500, ge=1, le=500)
        commit_threads: int = Field(3, ge=1, le=16, description="WriteBatches committed at once by one upsert/delete")
        timeout_s: float = Field(10.0, gt=0)

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._client: Any = None
        self._pending: list[tuple[str, Any, Any]] | None = None
        self._schemas: dict[str, CollectionSchema] = {}
        self._paths: dict[str, str] = {}  # field name -> its field path text

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        import os

        try:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import firestore
        except ModuleNotFoundError:
            raise DriverMissing("google-cloud-firestore is not installed", hint="pip install firebase-admin") from None
        project = self.options.project or (self.url or "").removeprefix("firestore://").strip("/") or None
        if not project:
            raise ConfigInvalid("no Firestore project", hint="url: firestore://PROJECT or options.project",
                                provider=self.name)
        emulator = self.options.emulator_host or os.environ.get("FIRESTORE_EMULATOR_HOST")
        with self._errors():
            if emulator:
                client = firestore.Client(project=project, credentials=AnonymousCredentials(),
                                          database=self.options.database)
                client._emulator_host = emulator  # per client, not through the process-wide environment
            elif self.options.credentials_file is not None:
                from google.oauth2 import service_account

                creds = service_account.Credentials.from_service_account_file(
                    self.options.credentials_file.get_secret_value())
                client = firestore.Client(project=project, credentials=creds, database=self.options.database)
            else:
                client = firestore.Client(project=project, database=self.options.database)
        return client

    @property
    def _rpc(self) -> dict[str, Any]:
        """Per-call retry and timeout: the client's defaults retry an unreachable server for minutes."""
        from google.api_core.retry import Retry

        t = self.options.timeout_s
        return {"retry": Retry(initial=0.1, maximum=1.0, timeout=t), "timeout": t}

    def _page_rpc(self, docs: int) -> dict[str, Any]:
        """`_rpc` for one streamed page of up to `docs` documents: the deadline grows with the page."""
        from google.api_core.retry import Retry

        t = max(self.options.timeout_s, docs * _PAGE_S_PER_DOC)
        return {"retry": Retry(initial=0.1, maximum=1.0, timeout=t), "timeout": t}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from google.api_core import exceptions as ge
        from google.auth import exceptions as auth_errors

        try:
            yield
        except BackendError:
            raise
        except (ge.DeadlineExceeded, ge.RetryError) as exc:
            raise ConnectionTimeout(f"Firestore did not answer in time: {self._text(exc)}", hint="retry",
                                    provider=self.name) from None
        except (ge.ServiceUnavailable, ge.Aborted, ge.ResourceExhausted, ge.InternalServerError) as exc:
            raise ProviderUnavailable(f"Firestore is unavailable or contended: {self._text(exc)}", hint="retry",
                                      provider=self.name) from None
        except (ge.PermissionDenied, ge.Unauthenticated, auth_errors.GoogleAuthError) as exc:
            raise AuthenticationFailed(f"Firestore refused the credentials: {self._text(exc)}",
                                       hint="check options.credentials_file and the project's IAM roles",
                                       provider=self.name) from None
        except ge.FailedPrecondition as exc:
            raise InvalidRequest(f"Firestore refused the query: {self._text(exc)}",
                                 hint="create the index the message names", provider=self.name) from None
        except ge.GoogleAPICallError as exc:
            raise InvalidRequest(f"Firestore refused the request: {self._text(exc)}", provider=self.name) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnsupportedValue(f"Firestore cannot take the value: {self._text(exc)}", provider=self.name) from None
        except OSError as exc:
            raise ProviderUnavailable(f"cannot reach Firestore: {self._text(exc)}", hint="retry",
                                      provider=self.name) from None

    def _text(self, exc: BaseException) -> str:
        secret = self.options.credentials_file.get_secret_value() if self.options.credentials_file else ""
        return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, [secret])[:500]

    # -- paths ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def _pattern(name: str) -> list[str]:
        parts = name.strip("/").split("/")
        if len(parts) % 2 == 0 or any(not p for p in parts) or any(
                (i % 2 == 1) != (p.startswith("{") and p.endswith("}")) for i, p in enumerate(parts)):
            raise InvalidRequest(f"{name!r} is not a collection path pattern", hint="e.g. users or users/{uid}/orders")
        return parts

    def _key_fields(self, name: str) -> tuple[str, ...]:
        return (*(p[1:-1] for p in self._pattern(name)[1::2]), "id")

    def _segments(self, name: str, key: Key) -> list[str]:
        """The path segments of the document with `key` in the collection pattern `name` (collection, id, …, id)."""
        parts = self._pattern(name)
        ids = [str(v) for v in key]
        if len(ids) != len(parts) // 2 + 1:
            raise InvalidRequest(f"key {key} does not fit {name!r}", provider=self.name)
        for v in ids:
            if not v or "/" in v or v in (".", ".."):
                raise UnsupportedValue(f"{v!r} cannot be a Firestore document id", provider=self.name)
        return [seg for i, p in enumerate(parts) for seg in ((p,) if i % 2 == 0 else (ids[i // 2],))] + [ids[-1]]

    def _ref(self, name: str, key: Key) -> Any:
        return self.client.document(*self._segments(name, key))

    def _key_of_path(self, name: str, path: str) -> Key | None:
        """The key of a document path, or None when the path is not in this collection."""
        parts, segs = self._pattern(name), path.split("/")
        if len(segs) != len(parts) + 1 or any(segs[i] != parts[i] for i in range(0, len(parts), 2)):
            return None
        return tuple(segs[i] for i in range(1, len(segs), 2))

    def _base(self, name: str) -> Any:
        parts = self._pattern(name)
        return self.client.collection(parts[0]) if len(parts) == 1 else self.client.collection_group(parts[-1])

    def _record(self, schema: CollectionSchema, key: Key, data: dict[str, Any]) -> Record:
        rec: Record = {c: None for c in schema.names}
        rec.update(zip(schema.key, key, strict=True))
        rec.update({f: self._dec(v) for f, v in data.items() if f != STAMP})
        return rec

    @staticmethod
    def _row(schema: CollectionSchema, key: Key, fields: dict[str, Any]) -> Record:
        """A record from fields already decoded by `_docs`."""
        rec: Record = dict.fromkeys(schema.names)
        rec.update(zip(schema.key, key, strict=True))
        rec.update(fields)
        return rec

    def _stream(self, name: str, query: Any) -> Iterator[tuple[Key, Any]]:
        with self._errors():
            for snap in query.stream(**self._rpc):
                key = self._key_of_path(name, snap.reference.path)
                if key is not None:
                    yield key, snap

    # -- data ----------------------------------------------------------------------------------------------------------
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        from google.cloud.firestore_v1.field_path import FieldPath

        schema = self.schema(name)
        query = self._base(name).order_by(FieldPath.document_id())
        if until is not None:
            query = query.end_at({"__name__": self._ref(name, until)})
        cursor = self._ref(name, after) if after is not None else None
        out: list[Record] = []
        while len(out) < limit:  # a collection group also holds other parents' subcollections: skip those, go on
            want = min(limit - len(out), _SCAN_PAGE)  # one stream per page: each must finish within its deadline
            page = (query.start_after({"__name__": cursor}) if cursor is not None else query).limit(want)
            n, last = 0, None
            for path, fields in self._docs(page, self._page_rpc(want)):
                n, last = n + 1, path
                key = self._key_of_path(name, path)
                if key is not None:
                    out.append(self._row(schema, key, fields))
            if n < want:
                break
            cursor = self.client.document(last)
        return out

    def scan_range(self, name: str, rng: KeyRange, *, batch: int) -> Iterator[list[Record]]:
        """Lists of `batch` records, read in pages of at least _SCAN_PAGE (fewer queries than a query per batch); each
        page is read whole before any of it is handed out, so no stream stays open while the caller works."""
        key = self.key_of(name)  # scan() serves Auth users and Storage objects too (their decorators override it)
        page, after = max(batch, _SCAN_PAGE), rng.lo
        while True:
            rows = self.scan(name, after=after, until=rng.hi, limit=page)
            for start in range(0, len(rows), batch):
                yield rows[start:start + batch]
            if len(rows) < page:
                return
            after = tuple(rows[-1][k] for k in key)

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        """Every `every`-th key in key order, without reading documents: a root collection asks for one document name
        per boundary (`offset(every - 1).limit(1)` on a keys-only query); a subcollection pattern, whose collection
        group may hold other parents' documents, counts names from a keys-only query (`select([])`)."""
        from google.cloud.firestore_v1.field_path import FieldPath

        from shiftover.adapters.userfiles import is_users_or_files

        if is_users_or_files(name):  # not documents (Auth users, Storage objects): the generic walk through scan()
            return super().key_boundaries(name, every)
        self.schema(name)
        query = self._base(name).order_by(FieldPath.document_id()).select([])
        out: list[Key] = []
        cursor = None
        if len(self._pattern(name)) == 1:
            while True:
                page = (query.start_after({"__name__": cursor}) if cursor is not None else query)
                with self._errors():
                    snaps = list(page.offset(every - 1).limit(1).stream(**self._page_rpc(every)))
                if not snaps:
                    return out
                cursor = snaps[0].reference
                out.append((snaps[0].id,))
        seen = 0
        while True:
            page = (query.start_after({"__name__": cursor}) if cursor is not None else query).limit(_KEYS_PAGE)
            n = 0
            with self._errors():
                for snap in page.stream(**self._page_rpc(_KEYS_PAGE)):
                    n, cursor = n + 1, snap.reference
                    key = self._key_of_path(name, snap.reference.path)
                    if key is not None:
                        seen += 1
                        if seen % every == 0:
                            out.append(key)
            if n < _KEYS_PAGE:
                return out

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        from google.cloud.firestore import FieldFilter
        from google.cloud.firestore_v1.field_path import FieldPath

        schema = self.schema(name)
        field = self.options.updated_at_field or STAMP
        query = self._base(name)
        if since is not None:
            query = query.where(filter=FieldFilter(field, ">", canonical.utc(since)))
        query = query.order_by(field).order_by(FieldPath.document_id()).limit(limit)
        return [self._row(schema, key, fields) for key, fields in self._keyed(name, query)]

    def _keyed(self, name: str, query: Any) -> Iterator[tuple[Key, dict[str, Any]]]:
        for path, fields in self._docs(query, self._rpc):
            key = self._key_of_path(name, path)
            if key is not None:
                yield key, fields

    def _commit(self, ops: list[tuple[str, Any, Any]]) -> None:
        if self._pending is not None:
            self._pending.extend(ops)
            return
        size = self.options.batch_size
        parts = [ops[start:start + size] for start in range(0, len(ops), size)]
        if len(parts) <= 1 or self.options.commit_threads <= 1:
            for part in parts:
                self._commit_batch(part)
            return
        # Batches are independent (each is atomic on its own, as before): several in flight keep the server busy while
        # this process builds the next one. The client is thread-safe; the first error is raised after all finish.
        with ThreadPoolExecutor(min(self.options.commit_threads, len(parts))) as pool:
            for job in [pool.submit(self._commit_batch, part) for part in parts]:
                job.result()

    def _commit_batch(self, ops: list[tuple[str, Any, Any]]) -> None:
        with self._errors():
            batch = self.client.batch()
            for op, ref, data in ops:
                if op == "pb":
                    add_raw_write(batch, data)
                elif op == "set":
                    batch.set(ref, data[0], merge=data[1])
                else:
                    batch.delete(ref)
            batch.commit(**self._rpc)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        from google.cloud.firestore import SERVER_TIMESTAMP
        from google.cloud.firestore_v1.field_path import FieldPath

        schema = self.schema(name)
        ops = []
        raw = wire() is not None
        with self._errors():
            for rec in records:
                try:
                    key = tuple(rec[k] for k in schema.key)
                except KeyError as exc:
                    raise InvalidRequest(f"record in {name!r} lacks key field {exc}", provider=self.name) from None
                if raw:  # the same Write as below, built without the client's per-value wrappers
                    fields = {f: v for f, v in rec.items() if f not in schema.key}
                    ops.append(("pb", None, self._upsert_pb(self._doc_path(name, key), fields)))
                    continue
                data = {f: self._enc(v) for f, v in rec.items() if f not in schema.key}
                data[STAMP] = SERVER_TIMESTAMP
                ops.append(("set", self._ref(name, key), (data, [FieldPath(f) for f in data])))
        self._commit(ops)
        return len(ops)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        self.schema(name)
        refs = [self._ref(name, tuple(k)) for k in keys]
        existing = []
        with self._errors():
            for start in range(0, len(refs), 500):
                snaps = self.client.get_all(refs[start:start + 500], field_paths=[], **self._rpc)
                existing += [s.reference for s in snaps if s.exists]
        self._commit([("delete", ref, None) for ref in existing])
        return len(existing)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Writes in the block are committed in one atomic batch (at most 500); reads see committed data."""
        if self._pending is not None:
            yield self
            return
        self._pending = []
        try:
            yield self
            ops = self._pending
        finally:
            self._pending = None
        if len(ops) > 500:
            raise InvalidRequest(f"a Firestore transaction takes at most 500 writes, not {len(ops)}",
                                 provider=self.name)
        self._commit(ops)


class FirestoreAdapter(FirebaseStorageFiles, FirebaseAuthUsers, FirestoreDocuments):
    """Firestore, with Firebase Authentication users as the collection `auth.users` (options.auth) and Storage
    objects as `storage/<bucket>` collections (options.storage). The first two classes serve those names and pass
    every other one on to FirestoreDocuments."""

    offers = replace(FirestoreDocuments.offers, auth=True, storage=True)  # narrowed by the mixins' options

    class Options(FirestoreDocuments.Options):
        auth: AuthOptions | None = Field(None, description="Firebase Authentication users as the collection auth.users")
        storage: StorageOptions | None = Field(None, description="Firebase Storage buckets as storage/<bucket>")

    options: Options

    def served_natively(self, name: str) -> bool:
        from shiftover.adapters.userfiles import is_users_or_files

        return not is_users_or_files(name)
