"""Users and files as collections: the canonical records every provider maps its Auth users and stored objects to.

`auth.users` — one record per user, keyed by `uid`:
    uid, email, email_verified, phone, disabled, created_at, last_sign_in_at, user_metadata (json, what the user may
    edit: display name, avatar ...), app_metadata (json, what only the server sets: roles, Firebase custom claims),
    password_hash and password_salt (base64 text, as the provider exports them) and password_hasher (json: the
    algorithm and its parameters, e.g. {"algorithm": "FIREBASE_SCRYPT", "rounds": 8, "mem_cost": 14,
    "salt_separator": "Bw==", "signer_key": SecretStr}). The signer key stays a SecretStr inside the record, so a
    record printed or hashed never shows it.

`storage/<bucket>` — one record per object, keyed by `path`:
    path, content_type, size, metadata (json: the object's custom metadata), sha256 (hex of the content), content
    (bytes). sha256 and content are in the digest, so a migration's integrity check compares content.

A provider that cannot keep a field declares it in `FieldLimits`: the migration report lists it as dropped and the
digest leaves it out (it cannot match); a field the target keeps but cannot give back (GoTrue never returns password
hashes) is listed as unverifiable and left out of the digest too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shiftover.adapters.base import CollectionSchema, Column, Filter, Key, Record
from shiftover.adapters.base import (
    FieldLimits as FieldLimits,  # defined with the adapter contract; users and files use it most
)
from shiftover.adapters.query import Order, check_window, matches, ordered, window

USERS = "auth.users"
STORAGE_PREFIX = "storage/"
FIREBASE_SCRYPT = "FIREBASE_SCRYPT"

USERS_SCHEMA = CollectionSchema(USERS, (
    Column("uid", "text", False),
    Column("email", "text"),
    Column("email_verified", "boolean"),
    Column("phone", "text"),
    Column("disabled", "boolean"),
    Column("created_at", "timestamp"),
    Column("last_sign_in_at", "timestamp"),
    Column("user_metadata", "json"),
    Column("app_metadata", "json"),
    Column("password_hash", "text"),
    Column("password_salt", "text"),
    Column("password_hasher", "json"),
), ("uid",))

PASSWORD_FIELDS = ("password_hash", "password_salt", "password_hasher")


def files_schema(name: str) -> CollectionSchema:
    return CollectionSchema(name, (
        Column("path", "text", False),
        Column("content_type", "text"),
        Column("size", "integer"),
        Column("metadata", "json"),
        Column("sha256", "text"),
        Column("content", "bytes"),
    ), ("path",))


def bucket_of(name: str) -> str | None:
    """The bucket of a `storage/<bucket>` collection name, else None."""
    if name.startswith(STORAGE_PREFIX) and len(name) > len(STORAGE_PREFIX) and "/" not in name[len(STORAGE_PREFIX):]:
        return name[len(STORAGE_PREFIX):]
    return None


def is_users_or_files(name: str) -> bool:
    return name == USERS or bucket_of(name) is not None


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def file_record(path: str, content: bytes, content_type: str | None, metadata: dict[str, Any] | None) -> Record:
    return {"path": path, "content_type": content_type, "size": len(content), "metadata": dict(metadata or {}),
            "sha256": sha256_hex(content), "content": content}


class FirebaseScrypt(BaseModel):
    """A Firebase project's password hash parameters, as the console shows them (Authentication → Users → ⋮ →
    Password hash parameters): base64_signer_key, base64_salt_separator, rounds, mem_cost."""

    model_config = ConfigDict(extra="forbid")
    hash_key: SecretStr = Field(description="base64_signer_key")
    salt_separator: str = Field("Bw==", description="base64_salt_separator")
    rounds: int = Field(8, ge=1, le=8)
    mem_cost: int = Field(14, ge=1, le=14)

    def hasher(self) -> dict[str, Any]:
        return {"algorithm": FIREBASE_SCRYPT, "rounds": self.rounds, "mem_cost": self.mem_cost,
                "salt_separator": self.salt_separator, "signer_key": self.hash_key}


def secret_text(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def page(records: Iterable[Record], key: Callable[[Record], Key], *, after: Key | None, until: Key | None,
         limit: int) -> list[Record]:
    """Keyset pagination over records already listed from an API: key order, after < key <= until."""
    chosen = [r for r in records if (after is None or key(r) > after) and (until is None or key(r) <= until)]
    return sorted(chosen, key=key)[:limit]


def select(records: Iterable[Record], where: Sequence[Filter], order_by: Order, limit: int | None,
           offset: int | None = None) -> list[Record]:
    """The application-facing find() over listed records: filters, then a stable multi-key order, offset, limit."""
    check_window(offset, limit)
    return window(ordered([r for r in records if matches(r, where)], order_by), offset, limit)


def find_files(where: Sequence[Filter], order_by: Order, limit: int | None, offset: int | None,
               listing: Callable[[], list[str]], read: Callable[[str], Record | None]) -> list[Record]:
    """find() over a bucket: the one object a `path == …` filter names, else every listed one, read and selected."""
    keys = [f for f in where if f.field == "path" and f.op == "eq"]
    paths = [str(keys[0].value)] if keys else listing()
    return select([r for r in (read(p) for p in paths) if r is not None], where, order_by, limit, offset)
