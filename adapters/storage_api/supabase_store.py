"""Supabase Storage through its HTTP API, with the provider's own client (SupabaseAdapter.api: options.api_url and
options.service_role_key) and its error mapping.

What the API decides: list walks one folder level per call (`POST /object/list/{bucket}`), so a prefix is listed from
its deepest folder down; update_metadata re-sends the content with the new metadata (`PUT /object/{bucket}/{path}`:
Storage has no metadata-only update); signed download URLs are `POST /object/sign/{bucket}/{path}`, signed upload URLs
`POST /object/upload/sign/{bucket}/{path}` (Supabase makes those valid for two hours, whatever expires_s says).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from shiftover.adapters.errors import ObjectExists, ObjectNotFound
from shiftover.adapters.storage_api.base import (
    Data,
    FileInfo,
    FileStore,
    check_metadata,
    check_page,
    check_path,
    guess_type,
    parse_time,
    read_data,
)


class SupabaseFileStore(FileStore):
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter  # a SupabaseAdapter, owned (closed with the store)
        self.provider = adapter.name

    def close(self) -> None:
        self.adapter.close()

    def _bucket(self, bucket: str) -> Any:
        return self.adapter.api.storage.from_(bucket)

    @contextmanager
    def _errors(self, bucket: str, path: str | None = None) -> Iterator[None]:
        """A missing object or a duplicate as this service's errors; the rest as the adapter maps them."""
        from storage3.exceptions import StorageApiError

        with self.adapter._errors():
            try:
                yield
            except StorageApiError as exc:
                status, text = str(exc.status), f"{exc.code} {exc.message}".lower()
                if path is not None and status == "404" and "bucket" not in text:
                    raise ObjectNotFound(f"no file {path!r} in bucket {bucket!r}",
                                         hint="list the bucket to see what is there", provider=self.provider) \
                        from None
                if path is not None and status == "409":
                    raise ObjectExists(f"{path!r} is already in bucket {bucket!r}",
                                       hint="pass upsert=True to replace it", provider=self.provider) from None
                raise

    # -- the contract ------------------------------------------------------------------------------------------------
    def upload(self, bucket: str, path: str, data: Data, *, content_type: str | None = None,
               metadata: Mapping[str, str] | None = None, upsert: bool = False) -> FileInfo:
        check_path(bucket, path, self.provider)
        options: dict[str, Any] = {"content-type": guess_type(path, content_type),
                                   "metadata": check_metadata(metadata, self.provider)}
        if upsert:
            options["upsert"] = "true"
        content = read_data(data)
        with self._errors(bucket, path):
            self._bucket(bucket).upload(path, content, options)
        return self.info(bucket, path)

    def download(self, bucket: str, path: str) -> bytes:
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            return bytes(self._bucket(bucket).download(path))

    def info(self, bucket: str, path: str) -> FileInfo:
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            raw = self._bucket(bucket).info(path)
        user = raw.get("user_metadata", raw.get("metadata")) or {}  # as adapters/supabase/storage.py reads it
        return FileInfo(bucket, path, int(raw.get("size") or 0),
                        raw.get("content_type") or raw.get("contentType") or guess_type(path, None),
                        parse_time(raw.get("last_modified") or raw.get("updated_at") or raw.get("created_at")),
                        {str(k): str(v) for k, v in user.items()}, str(raw.get("etag") or "").strip('"'))

    def list(self, bucket: str, prefix: str = "", *, limit: int = 100, offset: int = 0) -> list[FileInfo]:
        check_path(bucket, "x", self.provider)
        check_page(limit, offset, self.provider)
        paths = sorted(self._walk(bucket, prefix))
        return [self.info(bucket, p) for p in paths[offset:offset + limit]]

    def _walk(self, bucket: str, prefix: str) -> builtins.list[str]:
        """Every object path starting with `prefix`, walking only the folders that can hold one."""
        page = self.adapter.options.page_size
        out: builtins.list[str] = []
        folders = [prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""]
        with self._errors(bucket):
            files = self._bucket(bucket)
            while folders:
                folder, start = folders.pop(), 0
                while True:
                    entries = files.list(folder.rstrip("/") or None, {"limit": page, "offset": start})
                    for e in entries:
                        name = f"{folder}{e['name']}"
                        if e.get("id") is None and (f"{name}/".startswith(prefix) or prefix.startswith(f"{name}/")):
                            folders.append(f"{name}/")
                        elif e.get("id") is not None and name.startswith(prefix):
                            out.append(name)
                    if len(entries) < page:
                        break
                    start += len(entries)
        return out

    def delete(self, bucket: str, paths: Sequence[str]) -> int:
        for path in paths:
            check_path(bucket, path, self.provider)
        gone, paths = 0, builtins.list(paths)
        with self._errors(bucket):
            for start in range(0, len(paths), 1000):
                gone += len(self._bucket(bucket).remove(paths[start:start + 1000]) or [])
        return gone

    def signed_download_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            return str(self._bucket(bucket).create_signed_url(path, int(expires_s))["signedURL"])

    def signed_upload_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            return str(self._bucket(bucket).create_signed_upload_url(path)["signed_url"])

    def update_metadata(self, bucket: str, path: str, metadata: Mapping[str, str]) -> FileInfo:
        meta = check_metadata(metadata, self.provider)
        current = self.info(bucket, path)
        content = self.download(bucket, path)
        with self._errors(bucket, path):
            self._bucket(bucket).update(path, content, {"content-type": current.content_type, "metadata": meta})
        return self.info(bucket, path)
