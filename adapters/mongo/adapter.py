"""MongoDB through pymongo. URL: `mongodb://user:password@host:27017/db` (or `mongodb+srv://...`); options.database
overrides the URL's database. Other schemes reach in-process stand-ins registered in adapters/mongo/clients.py
(the tests' mongomock double serves `mongomock://NAME/db`).

Mapping (canonical ↔ BSON):
- The key: a one-field key is stored as `_id`; a composite key as an `_id` sub-document `{k1: .., k2: ..}`. Key fields
  are not stored twice. Collections not created by Shiftover have the key `("_id",)`.
- ObjectId ↔ its 24-hex string; the column is text with native "mongodb:objectId", so the string becomes an ObjectId
  again when written to MongoDB (top-level fields; ObjectIds nested in sub-documents read as strings).
- Decimal ↔ Decimal128 (34 significant digits; more is UnsupportedValue).
- datetime: BSON keeps milliseconds. A timestamp with sub-millisecond digits is stored as
  `{"@datetime": <BSON date, ms>, "@us": <the remaining 0..999 µs>}` and read back exact, so digests agree
  after a round trip; whole-millisecond timestamps stay plain BSON dates (queryable). Read as UTC.
- date ↔ `{"@date": "YYYY-MM-DD"}` (BSON has no date type). bytes ↔ BSON binary. Maps and arrays both ways.
  Maps whose only keys are these markers are reserved.
- Upserts merge by field (`$set`, like the SQL adapters' ON CONFLICT UPDATE), in `bulk_write(ordered=False)` batches.

Schemas: `create_collection` keeps the schema in `_shiftover_schemas`; other collections are inferred from a sample of
`options.sample_size` documents; `options.schemas` ({collection: {field: type}}) overrides field types.

changes(since): by `options.updated_at_field` when set; otherwise by a hidden `_shiftover_updated_at` that every
upsert stamps with the client's clock rounded up to the next millisecond (a change is never missed; a change made
within a millisecond before the watermark may be seen twice). Change streams are not used.

Mixed in: the values mapping above (adapters/mongo/values.py), the bulk paths by key range
(adapters/mongo/ranges.py) and the application queries (adapters/mongo/query.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from pydantic import Field

from shiftover.adapters import canonical
from shiftover.adapters.base import (
    Adapter,
    Capabilities,
    CollectionSchema,
    Column,
    Key,
    Record,
    override_columns,
)
from shiftover.adapters.errors import (
    AuthenticationFailed,
    BackendError,
    CollectionNotFound,
    ConfigInvalid,
    ConnectionTimeout,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
    url_secrets,
)
from shiftover.adapters.mongo import clients
from shiftover.adapters.mongo.clients import InProcessClient
from shiftover.adapters.mongo.query import MongoQueries
from shiftover.adapters.mongo.ranges import KeyRanges
from shiftover.adapters.mongo.values import OBJECT_ID, BsonValues

STAMP = "_shiftover_updated_at"
SCHEMAS = "_shiftover_schemas"
_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed


@functools.lru_cache(maxsize=64)
def _columns(schema: CollectionSchema) -> dict[str, Column]:
    return {c.name: c for c in schema.columns}


class MongoAdapter(MongoQueries, BsonValues, KeyRanges, Adapter):
    kind = "mongodb"
    offers = Capabilities(transactions=True, change_feed="updated-at field (stamped by the adapter)")

    class Options(Adapter.Options):
        database: str | None = None
        sample_size: int = Field(200, ge=1, description="documents read to infer a collection's schema")
        schemas: dict[str, dict[str, str]] = Field(default_factory=dict, description="field type overrides")
        updated_at_field: str | None = Field(None, description="field that tells changes(since); default: stamped")
        batch_size: int = Field(1000, ge=1, le=100_000)
        timeout_s: float = Field(5.0, gt=0)

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._client: Any = None
        self._session: Any = None
        self._schemas: dict[str, CollectionSchema] = {}

    def narrowed(self, offers: Capabilities) -> Capabilities:
        """An in-process stand-in (clients.py) offers transactions only if it says so."""
        double = self._double
        return Capabilities(change_feed=offers.change_feed) if double and not double.transactions else offers

    @property
    def _double(self) -> InProcessClient | None:
        return clients.for_url(self.url)

    def _secrets(self) -> list[str]:
        return url_secrets(self.url)

    @property
    def db(self) -> Any:
        if self._client is None:
            with self._errors():
                self._client, default = self._connect()
            self._db_name = self.options.database or default or "shiftover"
        return self._client[self._db_name]

    def _connect(self) -> tuple[Any, str | None]:
        url = self.url or ""
        if self._double is not None:
            return self._double.connect(url)
        import pymongo
        from pymongo.uri_parser import parse_uri

        if not url.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigInvalid("the provider's url is not a MongoDB URL", hint="mongodb://user:password@host:27017/db",
                                provider=self.name)
        ms = int(self.options.timeout_s * 1000)
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms * 6)
        return client, parse_uri(url).get("database")

    @property
    def _s(self) -> dict[str, Any]:
        """The open transaction's session as a keyword argument (mongomock refuses even session=None)."""
        return {"session": self._session} if self._session is not None else {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import bson.errors
        from pymongo import errors as pe

        try:
            yield
        except BackendError:
            raise
        except (pe.ServerSelectionTimeoutError, pe.NetworkTimeout, pe.ExecutionTimeout, pe.WTimeoutError) as exc:
            raise ConnectionTimeout(f"MongoDB did not answer in time: {self._text(exc)}",
                                    hint="check the host and port in the url; retry", provider=self.name) from None
        except (pe.AutoReconnect, pe.ConnectionFailure) as exc:
            raise ProviderUnavailable(f"MongoDB is unreachable: {self._text(exc)}", hint="retry",
                                      provider=self.name) from None
        except (pe.ConfigurationError, pe.InvalidURI) as exc:
            raise ConfigInvalid(f"MongoDB configuration: {self._text(exc)}", hint="fix the provider's url",
                                provider=self.name) from None
        except pe.OperationFailure as exc:
            if exc.code in _AUTH_CODES:
                raise AuthenticationFailed(f"MongoDB refused the credentials: {self._text(exc)}",
                                           hint="check the user and password in the url", provider=self.name) from None
            if exc.code == 20 or "replica set" in str(exc):
                raise InvalidRequest(f"MongoDB refused: {self._text(exc)}",
                                     hint="transactions need a replica set or mongos", provider=self.name) from None
            raise InvalidRequest(f"MongoDB refused the operation: {self._text(exc)}", provider=self.name) from None
        except (pe.InvalidDocument, bson.errors.InvalidId, bson.errors.InvalidBSON, OverflowError) as exc:
            raise UnsupportedValue(f"MongoDB cannot store the value: {self._text(exc)}", provider=self.name) from None
        except pe.PyMongoError as exc:
            raise InvalidRequest(f"MongoDB refused the operation: {self._text(exc)}", provider=self.name) from None
        except NotImplementedError as exc:  # mongomock's gaps
            raise InvalidRequest(f"this in-process stand-in cannot do this: {exc}", hint="use a real MongoDB server",
                                 provider=self.name) from None

    def _text(self, exc: BaseException) -> str:
        return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self._secrets())[:500]

    # -- schema --------------------------------------------------------------------------------------------------------
    def schema(self, name: str) -> CollectionSchema:
        if name not in self._schemas:
            with self._errors():
                stored = self.db[SCHEMAS].find_one({"_id": name}, **self._s)
                if stored is None and name not in self.db.list_collection_names(**self._s):
                    raise CollectionNotFound(f"no collection {name!r}", hint="check the collection name",
                                             provider=self.name)
            base = self._stored(stored) if stored else self._infer(name)
            cols = override_columns(list(base.columns), self.options.schemas.get(name, {}))
            self._schemas[name] = CollectionSchema(name, tuple(cols), base.key)
        return self._schemas[name]

    @staticmethod
    def _stored(doc: dict[str, Any]) -> CollectionSchema:
        cols = tuple(Column(c["name"], c["type"], c["nullable"], c.get("precision"), c.get("scale"), c.get("native"),
                            c.get("native_def"))
                     for c in doc["columns"])
        return CollectionSchema(doc["_id"], cols, tuple(doc["key"]))

    def _infer(self, name: str) -> CollectionSchema:
        from bson import ObjectId

        types: dict[str, set[str]] = {}
        with self._errors():
            for doc in self.db[name].find({}, **self._s).limit(self.options.sample_size):
                for f in set(types) - set(doc):
                    types[f].add("null")
                for f, v in doc.items():
                    kind = "objectid" if isinstance(v, ObjectId) else canonical.type_of(self._dec(v))
                    types.setdefault(f, set() if not types or f in types else {"null"}).add(kind)
        id_types = types.pop("_id", {"objectid"})
        types.pop(STAMP, None)
        key = Column("_id", "text", False, native=OBJECT_ID) if id_types == {"objectid"} else \
            Column("_id", canonical.merge_types(id_types - {"objectid"}), False)
        cols = [Column(f, canonical.merge_types(ts - {"null"}), "null" in ts) for f, ts in sorted(types.items())]
        return CollectionSchema(name, (key, *cols), ("_id",))

    def collections(self) -> list[str]:
        with self._errors():
            names = self.db.list_collection_names(**self._s)
        return sorted(n for n in names if not n.startswith(("_shiftover", "system.")))

    def create_collection(self, schema: CollectionSchema) -> None:
        doc = {"key": list(schema.key), "columns": [
            {"name": c.name, "type": c.type, "nullable": c.nullable, "precision": c.precision, "scale": c.scale,
             "native": c.native, "native_def": c.native_def} for c in schema.columns]}
        with self._errors():
            if schema.name not in self.db.list_collection_names(**self._s):
                self.db.create_collection(schema.name, **self._s)
            self.db[SCHEMAS].replace_one({"_id": schema.name}, doc, upsert=True, **self._s)
            self.db[schema.name].create_index(STAMP, **self._s)
        self._schemas.pop(schema.name, None)

    def drop_collection(self, name: str) -> None:
        with self._errors():
            self.db.drop_collection(name, **self._s)
            self.db[SCHEMAS].delete_one({"_id": name}, **self._s)
        self._schemas.pop(name, None)

    def count(self, name: str) -> int:
        self.schema(name)
        with self._errors():
            return self.db[name].count_documents({}, **self._s)

    def _probe(self, *, canary: bool) -> list[str]:
        with self._errors():
            self.db.command("ping")
            self.db.list_collection_names(**self._s)
            checks = ["connect", "read"]
            if canary:
                coll = self.db["_shiftover_canary"]
                doc_id = f"probe-{self.name}-{threading.get_ident()}"
                coll.replace_one({"_id": doc_id}, {"at": dt.datetime.now(dt.timezone.utc)}, upsert=True)
                if coll.find_one({"_id": doc_id}) is None:
                    raise InvalidRequest("canary document written but not read back", provider=self.name)
                coll.delete_one({"_id": doc_id})
                checks += ["write", "delete"]
        return checks

    # -- keys and records ----------------------------------------------------------------------------------------------
    def _paths(self, schema: CollectionSchema) -> list[str]:
        return ["_id"] if len(schema.key) == 1 else [f"_id.{k}" for k in schema.key]

    def _field_path(self, schema: CollectionSchema, field: str) -> str:
        if field in schema.key:
            return self._paths(schema)[schema.key.index(field)]
        return field

    def _id(self, schema: CollectionSchema, key: Key) -> Any:
        vals = [self._enc(v, schema.column(k)) for k, v in zip(schema.key, key, strict=True)]
        return vals[0] if len(vals) == 1 else dict(zip(schema.key, vals, strict=True))

    def _record(self, schema: CollectionSchema, doc: dict[str, Any]) -> Record:
        rec: Record = {c: None for c in schema.names}
        raw_id = doc.pop("_id")
        ids = [raw_id] if len(schema.key) == 1 else [raw_id.get(k) for k in schema.key]
        rec.update({k: self._dec(v) for k, v in zip(schema.key, ids, strict=True)})
        rec.update({f: self._dec(v) for f, v in doc.items() if f != STAMP})
        return rec

    def _keyset(self, schema: CollectionSchema, after: Key | None, until: Key | None) -> dict[str, Any]:
        """after < key <= until on the key paths, as nested ORs for a composite key."""
        paths = self._paths(schema)
        parts = []
        for bound, strict, last in ((after, "$gt", "$gt"), (until, "$lt", "$lte")):
            if bound is None:
                continue
            vals = [self._enc(v, schema.column(k)) for k, v in zip(schema.key, bound, strict=True)]
            ors = [{**{paths[j]: vals[j] for j in range(i)},
                    paths[i]: {last if i == len(paths) - 1 else strict: vals[i]}} for i in range(len(paths))]
            parts.append(ors[0] if len(ors) == 1 else {"$or": ors})
        return {"$and": parts} if len(parts) > 1 else (parts[0] if parts else {})

    def _each(self, cursor: Any) -> Iterator[dict[str, Any]]:
        """The documents of `cursor`: a server's cursor as it is, an in-process stand-in's its own faster way."""
        double = self._double
        return double.each(cursor) if double is not None and double.each is not None else cursor

    # scan_range, key_boundaries, digests, replace_range: adapters/mongo/ranges.py
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        schema = self.schema(name)
        with self._errors():
            cur = self.db[name].find(self._keyset(schema, after, until), **self._s)
            docs = list(self._each(cur.sort([(p, 1) for p in self._paths(schema)]).limit(limit)))
        return [self._record(schema, d) for d in docs]

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        schema = self.schema(name)
        field = self.options.updated_at_field or STAMP
        query = {} if since is None else {field: {"$gt": canonical.utc(since)}}
        with self._errors():
            cur = self.db[name].find(query, **self._s)
            docs = list(self._each(cur.sort([(field, 1)] + [(p, 1) for p in self._paths(schema)]).limit(limit)))
        return [self._record(schema, d) for d in docs]

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        from pymongo import UpdateOne

        schema = self.schema(name)
        stamp = self._stamp()
        ops = []
        for rec in records:
            try:
                key = tuple(rec[k] for k in schema.key)
            except KeyError as exc:
                raise InvalidRequest(f"record in {name!r} lacks key field {exc}", provider=self.name) from None
            ops.append(UpdateOne({"_id": self._id(schema, key)}, {"$set": self._fields(schema, rec, stamp)},
                                 upsert=True))
        with self._errors():
            for start in range(0, len(ops), self.options.batch_size):
                self.db[name].bulk_write(ops[start:start + self.options.batch_size], ordered=False,
                                         **self._s)
        return len(ops)

    def _stamp(self) -> dt.datetime:
        """The change stamp of a write now: the client's clock rounded up to the next millisecond."""
        now = dt.datetime.now(dt.timezone.utc)
        return now.replace(microsecond=now.microsecond // 1000 * 1000) + dt.timedelta(milliseconds=1)

    def _fields(self, schema: CollectionSchema, rec: Record, stamp: dt.datetime) -> dict[str, Any]:
        fields: dict[str, Any] = {STAMP: stamp}
        for f, v in rec.items():
            if f in schema.key:
                continue
            if "." in f or f.startswith("$") or f == "_id":
                raise UnsupportedValue(f"field name {f!r} cannot be stored in MongoDB", provider=self.name)
            fields[f] = self._enc(v, _columns(schema).get(f))
        return fields

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        schema = self.schema(name)
        ids = [self._id(schema, tuple(k)) for k in keys]
        n = 0
        with self._errors():
            for start in range(0, len(ids), self.options.batch_size):
                part = ids[start:start + self.options.batch_size]
                n += self.db[name].delete_many({"_id": {"$in": part}}, **self._s).deleted_count
        return n

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """A multi-document transaction (replica sets and mongos only); reads inside see its own writes."""
        if not self.capabilities.transactions:
            raise InvalidRequest("this in-process MongoDB stand-in does not offer transactions",
                                 hint="use a real MongoDB replica set",
                                 provider=self.name)
        if self._session is not None:
            yield self
            return
        with self._errors():
            session = self.db.client.start_session()
            session.start_transaction()
        self._session = session
        try:
            try:
                yield self
            except BaseException:
                with self._errors():
                    session.abort_transaction()
                raise
            with self._errors():
                session.commit_transaction()
        finally:
            self._session = None
            session.end_session()


