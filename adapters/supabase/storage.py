"""Supabase Storage buckets as `storage/<bucket>` collections of file records, mixed into SupabaseAdapter.

Objects go through Storage's API (list one folder level per call, download, upload with content type and metadata,
remove); options.buckets limits which buckets are collections (default: all). Every other collection name goes on to
the next class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, CollectionSchema, Filter, Key, KeyRange, Record
from shiftover.adapters.errors import CollectionNotFound, InvalidRequest, UnsupportedValue
from shiftover.adapters.query import Order
from shiftover.adapters.userfiles import FieldLimits, bucket_of, file_record, files_schema, find_files


class SupabaseStorageFiles(Adapter):
    """`storage/<bucket>` for SupabaseAdapter (which provides api, _errors, _copy_through_api and options)."""

    options: Any  # the host's Options: buckets, page_size

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._bucket_ids: list[str] | None = None
        self._paths: dict[str, list[str]] = {}  # bucket -> object paths in key order, read once per write

    if TYPE_CHECKING:  # what the host class provides
        api: Any

        @contextmanager
        def _errors(self) -> Iterator[None]: ...

        def _copy_through_api(self, source: Adapter, name: str, rng: KeyRange) -> int: ...

    # -- catalogue ------------------------------------------------------------------------------------------------
    def collections(self) -> list[str]:
        names = super().collections()
        return names + [f"storage/{b}" for b in self._buckets()] if self.capabilities.storage else names

    def _buckets(self) -> list[str]:
        if self._bucket_ids is None:
            with self._errors():
                self._bucket_ids = sorted(b.id for b in self.api.storage.list_buckets())
        existing, wanted = self._bucket_ids, self.options.buckets
        return existing if wanted is None else [b for b in existing if b in wanted]

    def schema(self, name: str) -> CollectionSchema:
        bucket = bucket_of(name)
        if bucket is None:
            return super().schema(name)
        if bucket not in self._buckets():
            raise CollectionNotFound(f"no Storage bucket {bucket!r}", hint="check options.buckets and the name",
                                     provider=self.name)
        return files_schema(name)

    def create_collection(self, schema: CollectionSchema) -> None:
        bucket = bucket_of(schema.name)
        if bucket is None:
            return super().create_collection(schema)
        if bucket not in self._buckets():
            with self._errors():
                self.api.storage.create_bucket(bucket, bucket, {"public": False})
            self._bucket_ids = None

    def create_for_bulk_copy(self, schema: CollectionSchema) -> None:
        if bucket_of(schema.name) is not None:  # filled through the API, never by COPY
            return self.create_collection(schema)
        return super().create_for_bulk_copy(schema)

    def drop_collection(self, name: str) -> None:
        bucket = bucket_of(name)
        if bucket is None:
            return super().drop_collection(name)
        if bucket in self._buckets():
            self.delete(name, [(p,) for p in self._object_paths(bucket)])
            with self._errors():
                self.api.storage.delete_bucket(bucket)
        self._paths.pop(bucket, None)
        self._bucket_ids = None

    def count(self, name: str) -> int:
        bucket = bucket_of(name)
        return len(self._object_paths(bucket)) if bucket is not None else super().count(name)

    # -- data -----------------------------------------------------------------------------------------------------
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        bucket = bucket_of(name)
        if bucket is None:
            return super().scan(name, after=after, until=until, limit=limit)
        paths = [p for p in self._object_paths(bucket)
                 if (after is None or (p,) > after) and (until is None or (p,) <= until)][:limit]
        return [self._read_object(bucket, p) for p in paths]

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        bucket = bucket_of(name)
        if bucket is not None:  # from the listing: a scan would download every object
            return [(p,) for p in self._object_paths(bucket)[every - 1::every]]
        return super().key_boundaries(name, every)

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        if bucket_of(name) is not None:
            return Adapter.replace_range(self, name, rng, records)
        return super().replace_range(name, rng, records)

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        if bucket_of(name) is not None:
            raise InvalidRequest(f"Supabase does not list {name!r} by change time",
                                 hint="migrate users and files with --strategy immediate", provider=self.name)
        return super().changes(name, since=since, limit=limit)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        bucket = bucket_of(name)
        if bucket is None:
            return super().upsert(name, records)
        self._paths.pop(bucket, None)
        with self._errors():
            files = self.api.storage.from_(bucket)
            for rec in records:
                content = bytes(rec.get("content") or b"")
                opts = {"upsert": "true", "content-type": rec.get("content_type") or "application/octet-stream",
                        "metadata": canonical.jsonable(rec.get("metadata") or {})}
                files.upload(_object_path(rec), content, opts)
        return len(records)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        bucket = bucket_of(name)
        if bucket is None:
            return super().delete(name, keys)
        present = set(self._object_paths(bucket))
        paths = [str(k[0]) for k in keys if str(k[0]) in present]
        with self._errors():
            for start in range(0, len(paths), 1000):
                self.api.storage.from_(bucket).remove(paths[start:start + 1000])
        self._paths.pop(bucket, None)
        return len(paths)

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        bucket = bucket_of(name)
        if bucket is None:
            return super().find(name, where, order_by=order_by, limit=limit, offset=offset)
        present = set(self._object_paths(bucket))
        return find_files(where, order_by, limit, offset, lambda: self._object_paths(bucket),
                          lambda path: self._read_object(bucket, path) if path in present else None)

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange,
                        progress: Callable[[int], None] | None = None) -> int:
        if bucket_of(name) is not None:
            return self._copy_through_api(source, name, rng)
        return super().copy_range_from(source, name, rng, progress)

    # -- freezes and capture cover the data plane only --------------------------------------------------------------
    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        super().freeze([n for n in names if bucket_of(n) is None], reason=reason)

    def unfreeze(self, names: Sequence[str]) -> None:
        super().unfreeze([n for n in names if bucket_of(n) is None])

    def capture_start(self, names: Sequence[str]) -> None:
        if any(bucket_of(n) is not None for n in names):
            return Adapter.capture_start(self, names)
        super().capture_start(names)

    def field_limits(self, name: str) -> FieldLimits:
        if bucket_of(name) is not None:
            return FieldLimits(not_carried=("cache_control", "object owner", "version"))
        return super().field_limits(name)

    # -- the API --------------------------------------------------------------------------------------------------
    def _object_paths(self, bucket: str) -> list[str]:
        """Every object path in the bucket, in key order (Storage lists one folder level per call)."""
        if bucket not in self._paths:
            out: list[str] = []
            folders = [""]
            with self._errors():
                files = self.api.storage.from_(bucket)
                while folders:
                    prefix, offset = folders.pop(), 0
                    while True:
                        entries = files.list(prefix.rstrip("/") or None,
                                             {"limit": self.options.page_size, "offset": offset})
                        for e in entries:
                            if e.get("id") is None:
                                folders.append(f"{prefix}{e['name']}/")
                            else:
                                out.append(f"{prefix}{e['name']}")
                        if len(entries) < self.options.page_size:
                            break
                        offset += len(entries)
            self._paths[bucket] = sorted(out)
        return self._paths[bucket]

    def _read_object(self, bucket: str, path: str) -> Record:
        with self._errors():
            files = self.api.storage.from_(bucket)
            info = files.info(path)
            content = files.download(path)
        ctype = info.get("content_type") or info.get("contentType") or (info.get("metadata") or {}).get("mimetype")
        return file_record(path, content, ctype, info.get("user_metadata", info.get("metadata")))


def _object_path(rec: Record) -> str:
    path = str(rec.get("path") or "")
    if not path or path.startswith("/") or path.endswith("/"):
        raise UnsupportedValue(f"{path!r} cannot be a Storage object path")
    return path
