"""Firebase Storage through the Cloud Storage JSON API, with the Firebase provider's own client (FirebaseFiles of
adapters/firestore/storage.py: options.storage, the emulator or options.credentials_file) and its error mapping.

upload(upsert=False) looks for the object, then writes with `ifGenerationMatch=0`, which Cloud Storage refuses when
the object exists by then (the firebase-tools emulator ignores preconditions: there only the look holds).
update_metadata PATCHes the object's metadata; the emulator routes no PATCH under /storage/v1, so there it writes the
same bytes again with the new metadata. Signed URLs are V4 signatures made with a service account's private key
(options.credentials_file): the emulator and default credentials without a key cannot sign, and say so. Download
tokens (firebaseStorageDownloadTokens, the getDownloadURL() links) are kept by update_metadata and not shown in
`metadata`.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from shiftover.adapters.errors import InvalidRequest, ObjectExists, ObjectNotFound
from shiftover.adapters.firestore.storage import DOWNLOAD_TOKENS
from shiftover.adapters.storage_api.base import (
    Data,
    FileInfo,
    FileStore,
    check_metadata,
    check_page,
    check_path,
    guess_type,
    read_data,
)


class FirebaseFileStore(FileStore):
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter  # a FirestoreAdapter with options.storage, owned (closed with the store)
        self.provider = adapter.name
        self.files = adapter.files  # FirebaseFiles: the client, its deadlines and its error mapping

    def close(self) -> None:
        self.adapter.close()

    @contextmanager
    def _errors(self, bucket: str, path: str | None = None) -> Iterator[None]:
        from google.api_core import exceptions as ge

        with self.files.errors():
            try:
                yield
            except ge.NotFound:
                if path is None:
                    raise
                raise ObjectNotFound(f"no file {path!r} in bucket {bucket!r}",
                                     hint="list the bucket to see what is there", provider=self.provider) from None
            except ge.PreconditionFailed:
                raise ObjectExists(f"{path!r} is already in bucket {bucket!r}", hint="pass upsert=True to replace it",
                                   provider=self.provider) from None

    def _blob(self, bucket: str, path: str) -> Any:
        """The object with its properties read; ObjectNotFound when there is none."""
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            blob = self.files.client.bucket(bucket).get_blob(path, **self.files._rpc)
        if blob is None:
            raise ObjectNotFound(f"no file {path!r} in bucket {bucket!r}", hint="list the bucket to see what is there",
                                 provider=self.provider)
        return blob

    def _info(self, bucket: str, blob: Any) -> FileInfo:
        updated = blob.updated.astimezone(dt.timezone.utc) if blob.updated else None
        metadata = {k: v for k, v in (blob.metadata or {}).items() if k != DOWNLOAD_TOKENS}
        return FileInfo(bucket, blob.name, int(blob.size or 0), blob.content_type or guess_type(blob.name, None),
                        updated, metadata, str(blob.etag or blob.md5_hash or ""))

    # -- the contract ------------------------------------------------------------------------------------------------
    def upload(self, bucket: str, path: str, data: Data, *, content_type: str | None = None,
               metadata: Mapping[str, str] | None = None, upsert: bool = False) -> FileInfo:
        check_path(bucket, path, self.provider)
        meta = check_metadata(metadata, self.provider)
        content = read_data(data)
        with self._errors(bucket, path):
            blob = self.files.client.bucket(bucket).blob(path)
            if not upsert and blob.exists(**self.files._rpc):  # the emulator ignores ifGenerationMatch
                raise ObjectExists(f"{path!r} is already in bucket {bucket!r}", hint="pass upsert=True to replace it",
                                   provider=self.provider)
            blob.metadata = meta or None
            blob.upload_from_string(content, content_type=guess_type(path, content_type),
                                    if_generation_match=None if upsert else 0, timeout=self.files.options.timeout_s)
        return self._info(bucket, blob)

    def download(self, bucket: str, path: str) -> bytes:
        check_path(bucket, path, self.provider)
        with self._errors(bucket, path):
            return bytes(self.files.client.bucket(bucket).blob(path).download_as_bytes(**self.files._rpc))

    def info(self, bucket: str, path: str) -> FileInfo:
        return self._info(bucket, self._blob(bucket, path))

    def list(self, bucket: str, prefix: str = "", *, limit: int = 100, offset: int = 0) -> list[FileInfo]:
        check_path(bucket, "x", self.provider)
        check_page(limit, offset, self.provider)
        out: builtins.list[FileInfo] = []
        with self._errors(bucket):
            blobs = self.files.client.list_blobs(bucket, prefix=prefix or None,
                                                 page_size=max(1, min(self.files.options.page_size, offset + limit)),
                                                 **self.files._rpc)
            for i, blob in enumerate(blobs):
                if i >= offset + limit:
                    break
                if i >= offset:
                    out.append(self._info(bucket, blob))
        return out

    def delete(self, bucket: str, paths: Sequence[str]) -> int:
        for path in paths:
            check_path(bucket, path, self.provider)
        return int(self.files.delete(bucket, [(p,) for p in paths]))

    def _sign(self, bucket: str, path: str, expires_s: int, method: str) -> str:
        blob = self._blob(bucket, path) if method == "GET" else self.files.client.bucket(bucket).blob(path)
        with self._errors(bucket, path):
            try:
                return str(blob.generate_signed_url(version="v4", expiration=dt.timedelta(seconds=expires_s),
                                                    method=method))
            except AttributeError:  # google-auth: "you need a private key to sign credentials"
                pass
        where = "the Storage emulator's" if self.files.emulator else "these"
        raise InvalidRequest(f"Firebase Storage signed URLs need a service account's private key; {where} "
                             "credentials cannot sign", hint="set options.credentials_file to a service account JSON "
                             "key (production), or serve the file through your app", provider=self.provider)

    def signed_download_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        return self._sign(bucket, path, expires_s, "GET")

    def signed_upload_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        check_path(bucket, path, self.provider)
        return self._sign(bucket, path, expires_s, "PUT")

    def update_metadata(self, bucket: str, path: str, metadata: Mapping[str, str]) -> FileInfo:
        meta = check_metadata(metadata, self.provider)
        from google.api_core import exceptions as ge

        blob = self._blob(bucket, path)
        kept = {k: v for k, v in (blob.metadata or {}).items() if k == DOWNLOAD_TOKENS}
        removed = {k: None for k in blob.metadata or {} if k not in kept and k not in meta}
        with self._errors(bucket, path):
            try:
                blob.metadata = {**removed, **meta}  # a key set to None is removed by the PATCH
                blob.patch(**self.files._rpc)
            except ge.MethodNotImplemented:  # the firebase-tools emulator serves PATCH only outside /storage/v1
                self._rewrite(blob, {**kept, **meta})
        return self._info(bucket, blob)

    def _rewrite(self, blob: Any, metadata: dict[str, str]) -> None:
        """Write the same bytes again with this metadata, unless the object changed in between (its generation)."""
        content = blob.download_as_bytes(if_generation_match=blob.generation, **self.files._rpc)
        generation, blob.metadata = blob.generation, metadata or None
        blob.upload_from_string(content, content_type=blob.content_type, if_generation_match=generation,
                                timeout=self.files.options.timeout_s)
