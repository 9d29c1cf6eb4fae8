"""Files in any fsspec filesystem: local folders in development, S3/GCS/Azure/... for the rest.

Configured on any provider as `options.files`:

    options:
      files:
        url: file:///var/data/files          # or memory://, s3://my-bucket/files (pip install s3fs) ...
        storage_options: {anon: false}        # the filesystem's own options; never shown in a message

Layout under the URL's root: `<bucket>/<path>` holds the bytes; `.shiftover-meta/<bucket>/<path>.json` holds what a
plain filesystem cannot (content type, custom metadata, an MD5 etag, the time of the last change). A file put there by
something else reads with a guessed content type, no metadata, and the filesystem's own size, time and tag.

Signed download URLs come from the filesystem's `sign` (s3fs and gcsfs have it; local and memory files do not);
signed upload URLs are not part of fsspec. upload(upsert=False) checks, then writes: two writers racing for one new
path can both succeed, the last one's bytes winning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from shiftover.adapters.errors import (
    AuthenticationFailed,
    BackendError,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ObjectExists,
    ObjectNotFound,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
    url_secrets,
)
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

META = ".shiftover-meta"


class FsspecFileStore(FileStore):
    def __init__(self, provider: str, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.provider = provider
        self._secrets = [*url_secrets(url), *(v for v in (storage_options or {}).values() if isinstance(v, str))]
        try:
            import fsspec
        except ModuleNotFoundError:
            raise DriverMissing("fsspec is not installed", hint="pip install fsspec", provider=provider) from None
        with self._errors():
            try:
                self.fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
            except ImportError as exc:  # s3fs, gcsfs ... are optional
                raise DriverMissing(f"the filesystem for {url.split('://', 1)[0]}:// is not installed",
                                    hint=f"pip install {exc.name or 'the fsspec implementation'}",
                                    provider=provider) from None
            except ValueError as exc:
                raise InvalidRequest(f"options.files.url is not an fsspec URL fsspec knows: {exc}",
                                     hint="write it as file:///var/data/files, memory://files or s3://bucket/prefix",
                                     provider=provider) from None
        self.root = root.rstrip("/") or ("/" if url.startswith("file:") else "")

    # -- paths -------------------------------------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if self.root else posixpath.join(*parts)

    def _file(self, bucket: str, path: str) -> str:
        check_path(bucket, path, self.provider)
        return self._join(bucket, path)

    def _meta(self, bucket: str, path: str) -> str:
        return self._join(META, bucket, path + ".json")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except BackendError:
            raise
        except TimeoutError as exc:
            raise ConnectionTimeout(f"the file store did not answer in time: {self._text(exc)}", hint="retry",
                                    provider=self.provider) from None
        except PermissionError as exc:
            raise AuthenticationFailed(f"the file store refused access: {self._text(exc)}",
                                       hint="check the permissions (or credentials) of options.files.url",
                                       provider=self.provider) from None
        except (ConnectionError, OSError) as exc:
            raise ProviderUnavailable(f"the file store failed: {self._text(exc)}",
                                      hint="check options.files.url and its permissions", provider=self.provider) \
                from None

    def _text(self, exc: BaseException) -> str:
        return redact(str(exc) or type(exc).__name__, self._secrets)[:500]

    def _missing(self, bucket: str, path: str) -> ObjectNotFound:
        return ObjectNotFound(f"no file {path!r} in bucket {bucket!r}", hint="list the bucket to see what is there",
                              provider=self.provider)

    # -- the contract ------------------------------------------------------------------------------------------------
    def upload(self, bucket: str, path: str, data: Data, *, content_type: str | None = None,
               metadata: Mapping[str, str] | None = None, upsert: bool = False) -> FileInfo:
        target = self._file(bucket, path)
        meta = check_metadata(metadata, self.provider)
        content = read_data(data)
        with self._errors():
            if not upsert and self.fs.isfile(target):
                raise ObjectExists(f"{path!r} is already in bucket {bucket!r}",
                                   hint="pass upsert=True to replace it", provider=self.provider)
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            self.fs.pipe_file(target, content)
            return self._write_meta(bucket, path, {
                "content_type": guess_type(path, content_type), "metadata": meta,
                "etag": hashlib.md5(content, usedforsecurity=False).hexdigest(), "size": len(content)})

    def _write_meta(self, bucket: str, path: str, record: dict[str, Any]) -> FileInfo:
        record["updated"] = dt.datetime.now(dt.timezone.utc).isoformat()
        where = self._meta(bucket, path)
        self.fs.makedirs(posixpath.dirname(where), exist_ok=True)
        self.fs.pipe_file(where, json.dumps(record).encode())
        return self._info(bucket, path, record, None)

    def _read_meta(self, bucket: str, path: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.fs.cat_file(self._meta(bucket, path)))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign file: the bytes are still there, their description is not
            return None
        return record if isinstance(record, dict) else None

    def _info(self, bucket: str, path: str, record: dict[str, Any] | None, stat: dict[str, Any] | None) -> FileInfo:
        record = record or {}
        stat = stat or {}
        size = stat.get("size", record.get("size"))
        stamp = record.get("updated") or stat.get("mtime") or stat.get("LastModified") or stat.get("created")
        etag = record.get("etag") or str(stat.get("ETag") or stat.get("etag") or "").strip('"')
        if not etag and stat:
            etag = f"{self.fs.checksum(self._join(bucket, path)):x}"
        return FileInfo(bucket, path, int(size or 0), record.get("content_type") or guess_type(path, None),
                        parse_time(stamp), dict(record.get("metadata") or {}), etag)

    def download(self, bucket: str, path: str) -> bytes:
        target = self._file(bucket, path)
        with self._errors():
            try:
                return bytes(self.fs.cat_file(target))
            except (FileNotFoundError, IsADirectoryError):
                raise self._missing(bucket, path) from None

    def info(self, bucket: str, path: str) -> FileInfo:
        target = self._file(bucket, path)
        with self._errors():
            try:
                stat = self.fs.info(target)
            except FileNotFoundError:
                raise self._missing(bucket, path) from None
            if stat.get("type") != "file":
                raise self._missing(bucket, path)
            record = self._read_meta(bucket, path)
            if record is not None and record.get("size") != stat.get("size"):
                record = {**record, "etag": None, "updated": None}  # rewritten behind the store's back
            return self._info(bucket, path, record, stat)

    def list(self, bucket: str, prefix: str = "", *, limit: int = 100, offset: int = 0) -> list[FileInfo]:
        check_path(bucket, "x", self.provider)
        check_page(limit, offset, self.provider)
        base = self._join(bucket)
        with self._errors():
            try:
                found = self.fs.find(base, detail=False) if self.fs.isdir(base) else []
            except FileNotFoundError:
                found = []
            paths = sorted(p for p in (_relative(f, base) for f in found) if p.startswith(prefix))
            return [self.info(bucket, p) for p in paths[offset:offset + limit]]

    def delete(self, bucket: str, paths: Sequence[str]) -> int:
        gone = 0
        with self._errors():
            for path in paths:
                target = self._file(bucket, path)
                if not self.fs.isfile(target):
                    continue
                self.fs.rm_file(target)
                gone += 1
                if self.fs.exists(self._meta(bucket, path)):
                    self.fs.rm_file(self._meta(bucket, path))
        return gone

    def signed_download_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        target = self._file(bucket, path)
        with self._errors():
            if not self.fs.isfile(target):
                raise self._missing(bucket, path)
            try:
                return str(self.fs.sign(target, expiration=expires_s))
            except NotImplementedError:
                raise InvalidRequest(f"{type(self.fs).__name__} cannot sign URLs (fsspec's sign)",
                                     hint="serve these files through your app, or keep them where fsspec can sign "
                                     "(s3://, gs://)", provider=self.provider) from None

    def signed_upload_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        self._file(bucket, path)
        raise InvalidRequest("an fsspec file store has no signed upload URLs",
                             hint="upload through FileStore.upload, or use Supabase or Firebase Storage",
                             provider=self.provider)

    def update_metadata(self, bucket: str, path: str, metadata: Mapping[str, str]) -> FileInfo:
        meta = check_metadata(metadata, self.provider)
        current = self.info(bucket, path)
        with self._errors():
            return self._write_meta(bucket, path, {"content_type": current.content_type, "metadata": meta,
                                                   "etag": current.etag, "size": current.size})


def _relative(found: str, base: str) -> str:
    rel = found[len(base):] if found.startswith(base) else found.split(base.lstrip("/"), 1)[-1]
    rel = rel.lstrip("/")
    if not rel:
        raise UnsupportedValue(f"{found!r} is not under {base!r}")
    return rel
