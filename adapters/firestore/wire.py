"""Every private google-cloud-firestore internal the Firestore adapter uses, in one place.

The wire path writes and reads raw protobuf (`Write` messages through `BaseBatch._add_write_pbs`, `RunQuery` through
`BaseQuery._prep_stream` and the client's `_firestore_api`), and reads a snapshot's `_data`: the client's per-value
encoding and decoding (proto-plus wrappers, snapshots with a deep copy) cost several times what the emulator spends on
a write or a read, and the process has one GIL for copying and validating. It gives exactly what the public API gives
(tests/test_firestore_wire.py compares them value by value). `wire()` is None when the installed client lacks any of
these, and the adapter then goes through the public API. VERIFIED_CLIENT is the client version that test was last run
against; the test fails on another version until someone runs it again and updates it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical

if TYPE_CHECKING:
    from shiftover.adapters.base import Key

VERIFIED_CLIENT = "2.34.1"  # google-cloud-firestore, as pinned in requirements.lock
STAMP = "_shiftover_updated_at"  # the server-time stamp the adapter writes on every document


def client_version() -> str:
    from importlib.metadata import version

    return version("google-cloud-firestore")


def snapshot_fields(snap: Any) -> dict[str, Any]:
    """A snapshot's fields without `to_dict()`'s deep copy (the snapshot already holds its own copy, and `_record`
    decodes every value into new containers); falls back to `to_dict()` should the client's internals change."""
    data = getattr(snap, "_data", None)
    return data if isinstance(data, dict) else (snap.to_dict() or {})


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_WIRE: Any = None  # the raw protobuf classes and client hooks of the wire path, or False where the client lacks them


def wire() -> Any:
    """The google-cloud-firestore internals the wire path needs (raw protobuf message classes, `_add_write_pbs`,
    `_prep_stream`), or None when this client version lacks any of them: callers then go through the public API.

    Why: the client's per-value encoding and decoding (proto-plus wrappers, snapshots with a deep copy) cost several
    times what the emulator spends on a write or a read, and the process has one GIL for copying and validating."""
    global _WIRE
    if _WIRE is None:
        try:
            from types import SimpleNamespace

            from google.cloud.firestore_v1 import _helpers
            from google.cloud.firestore_v1.base_batch import BaseBatch
            from google.cloud.firestore_v1.base_query import BaseQuery
            from google.cloud.firestore_v1.types import document as document_types
            from google.cloud.firestore_v1.types import write as write_types

            if not (hasattr(BaseBatch, "_add_write_pbs") and hasattr(BaseQuery, "_prep_stream")):
                raise AttributeError("_add_write_pbs/_prep_stream")
            _WIRE = SimpleNamespace(
                Write=write_types.Write.pb(), Value=document_types.Value,
                request_time=int(write_types.DocumentTransform.FieldTransform.ServerValue.REQUEST_TIME),
                encode_value=_helpers.encode_value, decode_value=_helpers.decode_value)
        except (ImportError, AttributeError):
            _WIRE = False
    return _WIRE or None


def add_raw_write(batch: Any, write: Any) -> None:
    """Add a raw protobuf Write (from `WireCodec._upsert_pb`) to a WriteBatch."""
    batch._add_write_pbs([write])


class WireCodec:
    """The wire path's methods, mixed into FirestoreDocuments (which provides the rest)."""

    if TYPE_CHECKING:  # what the host class provides
        client: Any
        _paths: dict[str, str]
        _enc: Callable[[Any], Any]
        _dec: Callable[[Any], Any]
        _errors: Callable[[], AbstractContextManager[None]]
        def _segments(self, name: str, key: Key) -> list[str]: ...

    def _put(self, pb: Any, value: Any) -> None:
        """Write the canonical `value` into the protobuf Value `pb`, as `encode_value(self._enc(value))` would: common
        types inline, anything else (references, geopoints, subclasses, unknown types) through the client itself."""
        t = type(value)
        if t is str:
            pb.string_value = value
        elif value is None:
            pb.null_value = 0
        elif t is int:
            if not -(2**63) <= value < 2**63:
                self._enc(value)  # raises UnsupportedValue
            pb.integer_value = value
        elif t is bool:
            pb.boolean_value = value
        elif t is float:
            pb.double_value = value
        elif t is Decimal:
            pb.map_value.fields["@decimal"].string_value = canonical.number_text(value)
        elif t is dt.datetime:
            d = canonical.utc(value) - _EPOCH
            ts = pb.timestamp_value
            ts.seconds, ts.nanos = d.days * 86400 + d.seconds, d.microseconds * 1000
        elif t is dict and not (len(value) == 1 and ("__ref__" in value or "__geopoint__" in value)):
            fields = pb.map_value.fields
            pb.map_value.SetInParent()  # an empty map is still a map
            for k, v in value.items():
                self._put(fields[str(k)], v)
        elif t is list or t is tuple:
            add = pb.array_value.values.add
            pb.array_value.SetInParent()
            for v in value:
                self._put(add(), v)
        elif t is bytes:
            pb.bytes_value = value
        elif t is dt.date:
            pb.map_value.fields["@date"].string_value = value.isoformat()
        else:
            pb.CopyFrom(wire().Value.pb(wire().encode_value(self._enc(value))))

    def _val(self, pb: Any) -> Any:
        """The canonical value of the protobuf Value `pb`, as `self._dec(decode_value(pb))` would give it."""
        kind = pb.WhichOneof("value_type")
        if kind == "string_value":
            return pb.string_value
        if kind == "integer_value":
            return pb.integer_value
        if kind == "null_value":
            return None
        if kind == "boolean_value":
            return pb.boolean_value
        if kind == "double_value":
            return pb.double_value
        if kind == "timestamp_value":
            ts = pb.timestamp_value
            return _EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
        if kind == "map_value":
            fields = pb.map_value.fields
            if len(fields) == 1 and ("@decimal" in fields or "@date" in fields):
                ((marker, inner),) = fields.items()
                if inner.WhichOneof("value_type") != "string_value":
                    return self._dec(wire().decode_value(wire().Value.wrap(pb), self.client))
                return Decimal(inner.string_value) if marker == "@decimal" else \
                    dt.date.fromisoformat(inner.string_value)
            return {k: self._val(v) for k, v in fields.items()}
        if kind == "array_value":
            return [self._val(v) for v in pb.array_value.values]
        if kind == "bytes_value":
            return pb.bytes_value
        return self._dec(wire().decode_value(wire().Value.wrap(pb), self.client))  # references, geopoints

    def _field_path(self, field: str) -> str:
        path = self._paths.get(field)
        if path is None:
            from google.cloud.firestore_v1.field_path import FieldPath

            path = self._paths[field] = FieldPath(field).to_api_repr()
        return path

    def _upsert_pb(self, path: str, fields: dict[str, Any]) -> Any:
        """The Write of `batch.set(ref, {**fields, STAMP: SERVER_TIMESTAMP}, merge=[each top-level field])`: the given
        fields replace theirs, other fields stay, and STAMP takes the server's commit time."""
        write = wire().Write()
        doc = write.update
        doc.name = path
        out = doc.fields
        for f, v in fields.items():
            if f != STAMP:
                self._put(out[f], v)
        write.update_mask.field_paths.extend(sorted(self._field_path(f) for f in fields if f != STAMP))
        write.update_mask.SetInParent()
        write.update_transforms.add(field_path=STAMP, set_to_server_value=wire().request_time)
        return write

    def _docs(self, query: Any, rpc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(document path relative to the database, canonical fields without STAMP) for each result of `query`: one
        RunQuery stream read as raw protobuf where the client allows it, else through `query.stream()`."""
        if not hasattr(query, "_prep_stream") and hasattr(query, "_query"):
            query = query._query()  # a CollectionReference: the Query of all its documents
        with self._errors():
            if wire() is None or not hasattr(query, "_prep_stream"):
                for snap in query.stream(**rpc):
                    yield snap.reference.path, {f: self._dec(v) for f, v in snapshot_fields(snap).items() if f != STAMP}
                return
            request, _, kwargs = query._prep_stream(None, rpc.get("retry"), rpc.get("timeout"))
            prefix = f"{self.client._database_string}/documents/"
            for resp in self.client._firestore_api.run_query(request=request, metadata=self.client._rpc_metadata,
                                                            **kwargs):
                pb = resp._pb
                if not pb.HasField("document"):
                    continue
                doc = pb.document
                yield doc.name.removeprefix(prefix), {f: self._val(v) for f, v in doc.fields.items() if f != STAMP}

    def _doc_path(self, name: str, key: Key) -> str:
        """The full resource name of the document with `key` (what `_ref(name, key)._document_path` gives)."""
        return f"{self.client._database_string}/documents/{'/'.join(self._segments(name, key))}"
