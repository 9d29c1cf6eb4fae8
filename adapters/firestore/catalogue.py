"""Firestore's catalogue, mixed into FirestoreDocuments: a collection's schema (kept in `_shiftover_schemas` by
create_collection, else inferred from a sample of documents), the collections, creating and dropping one, counting
documents, and the health probe."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shiftover.adapters import canonical
from shiftover.adapters.base import CollectionSchema, Column, Key, override_columns
from shiftover.adapters.errors import CollectionNotFound, InvalidRequest
from shiftover.adapters.firestore.wire import STAMP

SCHEMAS = "_shiftover_schemas"


class DocumentCatalogue:
    """schema, collections, create_collection, drop_collection, count and _probe for FirestoreDocuments (which
    provides the rest)."""

    if TYPE_CHECKING:  # what the host class provides
        name: str
        options: Any
        _schemas: dict[str, CollectionSchema]
        _errors: Callable[[], AbstractContextManager[None]]
        @property
        def client(self) -> Any: ...
        @property
        def _rpc(self) -> dict[str, Any]: ...
        def _dec(self, value: Any) -> Any: ...
        def _pattern(self, name: str) -> list[str]: ...
        def _key_fields(self, name: str) -> tuple[str, ...]: ...
        def _base(self, name: str) -> Any: ...
        def _stream(self, name: str, query: Any) -> Iterator[tuple[Key, Any]]: ...
        def _commit(self, ops: list[tuple[str, Any, Any]]) -> None: ...

    def _meta(self, name: str) -> Any:
        return self.client.collection(SCHEMAS).document(quote(name, safe=""))

    def schema(self, name: str) -> CollectionSchema:
        if name not in self._schemas:
            key = self._key_fields(name)
            with self._errors():
                stored = self._meta(name).get(**self._rpc)
            if stored.exists:
                cols = [Column(c["name"], c["type"], c["nullable"], c.get("precision"), c.get("scale"),
                               c.get("native"), c.get("native_def")) for c in stored.get("columns")]
            else:
                cols = self._infer(name, key)
            cols = override_columns(cols, self.options.schemas.get(name, {}))
            self._schemas[name] = CollectionSchema(name, tuple(cols), key)
        return self._schemas[name]

    def _infer(self, name: str, key: tuple[str, ...]) -> list[Column]:
        types: dict[str, set[str]] = {}
        seen = 0
        for _, snap in self._stream(name, self._base(name).limit(self.options.sample_size)):
            data = snap.to_dict() or {}
            for f in set(types) - set(data):
                types[f].add("null")
            for f, v in data.items():
                types.setdefault(f, {"null"} if seen else set()).add(canonical.type_of(self._dec(v)))
            seen += 1
        if not seen and name not in self.options.schemas:
            raise CollectionNotFound(f"no collection {name!r} (or it is empty)", hint="check the collection name",
                                     provider=self.name)
        types.pop(STAMP, None)
        return [Column(k, "text", False) for k in key] + [
            Column(f, canonical.merge_types(ts - {"null"}), "null" in ts)
            for f, ts in sorted(types.items()) if f not in key]

    def collections(self) -> list[str]:
        with self._errors():
            roots = {c.id for c in self.client.collections(**self._rpc)}
            stored = {s.get("name") for s in self.client.collection(SCHEMAS).stream(**self._rpc)}
        return sorted(n for n in roots | stored | set(self.options.schemas) if not n.startswith("_shiftover"))

    def create_collection(self, schema: CollectionSchema) -> None:
        if schema.key != self._key_fields(schema.name):
            raise InvalidRequest(f"Firestore keys {schema.name!r} by {self._key_fields(schema.name)}, not {schema.key}",
                                 hint="name the key column id (and the parents' keys as in the path pattern)",
                                 provider=self.name)
        cols = [{"name": c.name, "type": c.type, "nullable": c.nullable, "precision": c.precision, "scale": c.scale,
                 "native": c.native, "native_def": c.native_def} for c in schema.columns]
        with self._errors():
            self._meta(schema.name).set({"name": schema.name, "columns": cols}, **self._rpc)
        self._schemas.pop(schema.name, None)

    def drop_collection(self, name: str) -> None:
        while refs := [snap.reference for _, snap in self._stream(name, self._base(name).select([]).limit(500))]:
            self._commit([("delete", ref, None) for ref in refs])
        with self._errors():
            self._meta(name).delete(**self._rpc)
        self._schemas.pop(name, None)

    def count(self, name: str) -> int:
        self.schema(name)
        if len(self._pattern(name)) == 1:
            with self._errors():
                return int(self._base(name).count().get(**self._rpc)[0][0].value)
        return sum(1 for _ in self._stream(name, self._base(name).select([])))

    def _probe(self, *, canary: bool) -> list[str]:
        with self._errors():
            self.client.collection(SCHEMAS).limit(1).get(**self._rpc)
            checks = ["connect", "read"]
            if canary:
                ref = self.client.collection("_shiftover_canary").document(f"probe-{threading.get_ident()}")
                ref.set({"at": dt.datetime.now(dt.timezone.utc)}, **self._rpc)
                if not ref.get(**self._rpc).exists:
                    raise InvalidRequest("canary document written but not read back", provider=self.name)
                ref.delete(**self._rpc)
                checks += ["write", "delete"]
        return checks
