"""The storage service's contract: one `FileStore` interface over buckets of files, and the value it answers with.

Every store raises only shiftover.adapters.errors types:
- ObjectNotFound (BACKEND_019): no file at that bucket and path (download, info, update_metadata, signed URLs);
- ObjectExists (BACKEND_020): upload(upsert=False) found a file already there;
- InvalidRequest (BACKEND_014): what the provider does not offer (a signed URL without a signing key), with a hint;
- UnsupportedValue (BACKEND_009): a path or metadata the store cannot hold;
- the provider's connection errors (ConnectionTimeout, ProviderUnavailable, AuthenticationFailed) as its adapter
  reports them.

Paths are relative, `/`-separated, with no empty, `.` or `..` segment; custom metadata is text → text on every store
(Firebase keeps nothing else), so a file moves between providers unchanged.
"""

from __future__ import annotations

import abc
import datetime as dt
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Self

from shiftover.adapters.errors import UnsupportedValue

Data = bytes | bytearray | memoryview | IO[bytes]


@dataclass(frozen=True)
class FileInfo:
    """One stored file as every store describes it."""

    bucket: str
    path: str
    size: int
    content_type: str
    updated: dt.datetime | None  # UTC; when the content or metadata last changed, as the provider tells it
    metadata: dict[str, str] = field(default_factory=dict)  # the file's custom metadata
    etag: str = ""  # the provider's version tag: changes when the content does


class FileStore(abc.ABC):
    """Files in buckets. Opened per use (`with file_store(config, name) as files:`), not shared between threads."""

    provider: str

    @abc.abstractmethod
    def upload(self, bucket: str, path: str, data: Data, *, content_type: str | None = None,
               metadata: Mapping[str, str] | None = None, upsert: bool = False) -> FileInfo:
        """Store `data` (bytes or a binary file object, read to its end) at bucket/path. Without a content type, one
        is guessed from the path's extension (else application/octet-stream). upsert=False refuses to replace a file
        that is there (ObjectExists)."""

    @abc.abstractmethod
    def download(self, bucket: str, path: str) -> bytes: ...

    @abc.abstractmethod
    def info(self, bucket: str, path: str) -> FileInfo: ...

    @abc.abstractmethod
    def list(self, bucket: str, prefix: str = "", *, limit: int = 100, offset: int = 0) -> list[FileInfo]:
        """Files whose path starts with `prefix` (at any depth), in path order, `limit` of them after `offset`."""

    @abc.abstractmethod
    def delete(self, bucket: str, paths: Sequence[str]) -> int:
        """Delete these files; returns how many were there (missing ones are skipped)."""

    @abc.abstractmethod
    def signed_download_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        """A URL anyone holding it can GET the file from until it expires; InvalidRequest where the provider cannot
        sign."""

    @abc.abstractmethod
    def signed_upload_url(self, bucket: str, path: str, expires_s: int = 3600) -> str:
        """A URL anyone holding it can upload the file to (Supabase: PUT with the file as a form field `file`, valid
        two hours whatever expires_s says; GCS: PUT with the bytes as the body); InvalidRequest where the provider
        cannot sign."""

    @abc.abstractmethod
    def update_metadata(self, bucket: str, path: str, metadata: Mapping[str, str]) -> FileInfo:
        """Replace the file's custom metadata with `metadata` (keys not given are removed); content unchanged."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_data(data: Data) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    content = data.read()
    if not isinstance(content, bytes):
        raise UnsupportedValue("upload takes bytes or a binary file object (opened with 'rb')",
                               hint="open the file in binary mode")
    return content


def guess_type(path: str, content_type: str | None) -> str:
    return content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"


def check_path(bucket: str, path: str, provider: str) -> None:
    """Refuse a bucket or path no store can hold the same way (UnsupportedValue, naming which)."""
    if not bucket or "/" in bucket or bucket.startswith(".") or "\x00" in bucket:
        raise UnsupportedValue(f"{bucket[:200]!r} cannot be a bucket name",
                               hint="a bucket is one name without '/', not starting with '.'", provider=provider)
    parts = path.split("/")
    if not path or "\x00" in path or any(p in ("", ".", "..") for p in parts) or len(path.encode()) > 1024:
        raise UnsupportedValue(f"{path[:200]!r} cannot be a file path",
                               hint="write it relative (a/b.txt): no leading or trailing '/', no '.', '..' or empty "
                               "parts, at most 1024 bytes", provider=provider)


def check_page(limit: int, offset: int, provider: str) -> None:
    if limit < 0 or offset < 0:
        raise UnsupportedValue(f"list takes limit >= 0 and offset >= 0, not {limit} and {offset}", provider=provider)


def check_metadata(metadata: Mapping[str, str] | None, provider: str) -> dict[str, str]:
    out = dict(metadata or {})
    other = sorted(str(k) for k, v in out.items() if not isinstance(k, str) or not isinstance(v, str))
    if other:
        raise UnsupportedValue(f"metadata {', '.join(other)[:200]} is not text: file metadata is text → text on "
                               "every provider", hint="store those values as text (str(v), json.dumps(v))",
                               provider=provider)
    return out


def parse_time(value: object) -> dt.datetime | None:
    """A provider's timestamp (ISO text, datetime, or epoch seconds) as a UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, dt.datetime):
        when = value
    else:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)
