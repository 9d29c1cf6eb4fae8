"""Supabase Auth (GoTrue) users as canonical records, and back: ids, metadata, bans and password hashes.

A user whose uid is not a UUID (a Firebase uid) gets the id uuid5(UID_NAMESPACE, uid), and the uid is kept in
app_metadata.firebase_uid, which is read back as the record's uid.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, CollectionSchema, Filter, Key, KeyRange, Record
from shiftover.adapters.errors import InvalidRequest, UnsupportedValue
from shiftover.adapters.query import Order
from shiftover.adapters.userfiles import (
    FIREBASE_SCRYPT,
    PASSWORD_FIELDS,
    USERS,
    USERS_SCHEMA,
    FieldLimits,
    page,
    secret_text,
    select,
)

UID_NAMESPACE = uuid.UUID("5c6d2a4e-1f1b-4c55-9a57-7368696674ed")
_GOTRUE_APP_KEYS = ("provider", "providers")  # app_metadata keys GoTrue maintains itself
_BANNED = "876000h"  # GoTrue's way to disable a user: a ban of 100 years


def user_attrs(rec: Record, provider: str) -> dict[str, Any]:
    """The GoTrue admin API's attributes for a canonical user (its id: the uid, or uuid5 of a Firebase uid)."""
    uid = str(rec["uid"])
    app = dict(canonical.jsonable(rec.get("app_metadata") or {}))
    if _is_uuid(uid):
        user_id = uid
    else:
        user_id = str(uuid.uuid5(UID_NAMESPACE, uid))
        app["firebase_uid"] = uid
    attrs: dict[str, Any] = {
        "id": user_id, "email_confirm": bool(rec.get("email_verified")), "app_metadata": app,
        "user_metadata": dict(canonical.jsonable(rec.get("user_metadata") or {})),
        "ban_duration": _BANNED if rec.get("disabled") else "none",
    }
    if rec.get("email"):
        attrs["email"] = rec["email"]
    if rec.get("phone"):
        attrs["phone"], attrs["phone_confirm"] = str(rec["phone"]).lstrip("+"), True
    hashed = password_hash(rec, provider)
    if hashed:
        attrs["password_hash"] = hashed
    return attrs

def password_hash(rec: Record, provider: str) -> str | None:
    """The hash as GoTrue takes it: bcrypt and argon2 as they are, Firebase scrypt in its $fbscrypt$ form."""
    digest, hasher = rec.get("password_hash"), rec.get("password_hasher") or {}
    if not digest:
        return None
    algorithm = str(hasher.get("algorithm", "")).upper()
    if algorithm == FIREBASE_SCRYPT:
        missing = [k for k in ("rounds", "mem_cost", "salt_separator", "signer_key") if hasher.get(k) in (None, "")]
        if missing or not rec.get("password_salt"):
            raise InvalidRequest(
                f"user {rec['uid']!r} has a Firebase scrypt hash but the hash parameters lack "
                f"{', '.join(missing) or 'the salt'}",
                hint="set options.auth.hash_key, salt_separator, rounds and mem_cost on the Firebase provider "
                     "(Firebase console → Authentication → Users → ⋮ → Password hash parameters)",
                provider=provider)
        return (f"$fbscrypt$v=1,n={int(hasher['mem_cost'])},r={int(hasher['rounds'])},p=1,"
                f"ss={_std_b64(hasher['salt_separator'])},sk={_std_b64(secret_text(hasher['signer_key']))}"
                f"${_std_b64(rec['password_salt'])}${_std_b64(digest)}")
    if algorithm in ("BCRYPT", "ARGON2") or str(digest).startswith(("$2", "$argon2")):
        return str(digest)
    raise UnsupportedValue(f"user {rec['uid']!r} has a {algorithm or 'unknown'} password hash, which Supabase Auth "
                           "cannot verify (it takes bcrypt, argon2 and Firebase scrypt)",
                           hint="leave auth.users out with --collections, or reset those passwords",
                           provider=provider)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _std_b64(text: Any) -> str:
    """Base64 in the standard alphabet with padding (Firebase exports the web-safe one)."""
    raw = str(text).strip()
    return base64.b64encode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))).decode()


def _timestamp(value: Any) -> dt.datetime | None:
    return canonical.utc(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))) if value else None


def user_record(u: dict[str, Any]) -> Record:
    app = {k: v for k, v in (u.get("app_metadata") or {}).items() if k not in _GOTRUE_APP_KEYS}
    uid = app.pop("firebase_uid", None) or u["id"]
    banned = _timestamp(u.get("banned_until"))
    return {
        "uid": uid, "email": u.get("email") or None,
        "email_verified": u.get("email_confirmed_at") is not None,
        "phone": ("+" + str(u["phone"]).lstrip("+")) if u.get("phone") else None,
        "disabled": banned is not None and banned > dt.datetime.now(dt.timezone.utc),
        "created_at": _timestamp(u.get("created_at")), "last_sign_in_at": _timestamp(u.get("last_sign_in_at")),
        "user_metadata": json.loads(json.dumps(u.get("user_metadata") or {})), "app_metadata": app,
        "password_hash": None, "password_salt": None, "password_hasher": None,
    }


class SupabaseAuthUsers(Adapter):
    """`auth.users` through Auth's admin API (GET/POST /auth/v1/admin/users, GET/PUT/DELETE .../users/{id}), mixed
    into SupabaseAdapter (which provides api, _errors, _copy_through_api and options); every other name goes on."""

    options: Any  # the host's Options: page_size

    if TYPE_CHECKING:  # what the host class provides
        api: Any

        @contextmanager
        def _errors(self) -> Iterator[None]: ...

        def _copy_through_api(self, source: Adapter, name: str, rng: KeyRange) -> int: ...

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._users: dict[str, tuple[str, Record]] | None = None  # uid -> (Supabase id, record); reset on writes

    # -- catalogue ------------------------------------------------------------------------------------------------
    def collections(self) -> list[str]:
        names = super().collections()
        return [*names, USERS] if self.capabilities.auth else names

    def schema(self, name: str) -> CollectionSchema:
        return USERS_SCHEMA if name == USERS else super().schema(name)

    def create_collection(self, schema: CollectionSchema) -> None:
        if schema.name != USERS:  # every Supabase project has its users
            super().create_collection(schema)

    def create_for_bulk_copy(self, schema: CollectionSchema) -> None:
        if schema.name != USERS:  # filled through the API, never by COPY
            super().create_for_bulk_copy(schema)

    def drop_collection(self, name: str) -> None:
        if name == USERS:
            raise InvalidRequest("Shiftover does not delete every user of a Supabase project",
                                 hint="delete users by key, or in the dashboard", provider=self.name)
        super().drop_collection(name)

    def count(self, name: str) -> int:
        return len(self._list_users()) if name == USERS else super().count(name)

    # -- data -----------------------------------------------------------------------------------------------------
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        if name == USERS:
            return page(self._list_users(), _uid_key, after=after, until=until, limit=limit)
        return super().scan(name, after=after, until=until, limit=limit)

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        if name == USERS:
            return sorted(_uid_key(r) for r in self._list_users())[every - 1::every]
        return super().key_boundaries(name, every)

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        if name == USERS:
            return Adapter.replace_range(self, name, rng, records)
        return super().replace_range(name, rng, records)

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        if name == USERS:
            raise InvalidRequest(f"Supabase does not list {name!r} by change time",
                                 hint="migrate users and files with --strategy immediate", provider=self.name)
        return super().changes(name, since=since, limit=limit)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        return self._upsert_users(records) if name == USERS else super().upsert(name, records)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        if name != USERS:
            return super().delete(name, keys)
        ids = self._user_ids()
        gone = [ids[str(k[0])] for k in keys if str(k[0]) in ids]
        self._users = None
        with self._errors():
            for user_id in gone:
                self.api.auth.admin.delete_user(user_id)
        return len(gone)

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        if name == USERS:
            return select(self.scan(name, limit=10**9), where, order_by, limit, offset)
        return super().find(name, where, order_by=order_by, limit=limit, offset=offset)

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange,
                        progress: Callable[[int], None] | None = None) -> int:
        if name == USERS:
            return self._copy_through_api(source, name, rng)
        return super().copy_range_from(source, name, rng, progress)

    # -- freezes and capture cover the data plane only --------------------------------------------------------------
    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        super().freeze([n for n in names if n != USERS], reason=reason)

    def unfreeze(self, names: Sequence[str]) -> None:
        super().unfreeze([n for n in names if n != USERS])

    def capture_start(self, names: Sequence[str]) -> None:
        if USERS in names:
            return Adapter.capture_start(self, names)
        super().capture_start(names)

    def field_limits(self, name: str) -> FieldLimits:
        if name != USERS:
            return super().field_limits(name)
        return FieldLimits(
            dropped={"created_at": "Supabase Auth sets a user's creation time itself",
                     "last_sign_in_at": "Supabase Auth sets it at the next sign-in"},
            unverifiable={f: "Supabase Auth keeps password hashes but its API never returns them"
                          for f in PASSWORD_FIELDS},
            not_carried=("identities (OAuth links)", "MFA factors", "sessions", "role", "banned_until date"))

    # -- the API --------------------------------------------------------------------------------------------------
    def _listed_users(self) -> dict[str, tuple[str, Record]]:
        if self._users is None:
            out, number = {}, 1
            with self._errors():
                while True:
                    batch = self.api.auth.admin.list_users(page=number, per_page=self.options.page_size)
                    for u in batch:
                        rec = user_record(u.model_dump(mode="json"))
                        out[rec["uid"]] = (u.id, rec)
                    if len(batch) < self.options.page_size:
                        break
                    number += 1
            self._users = out
        return self._users

    def _list_users(self) -> list[Record]:
        return [dict(rec) for _, rec in self._listed_users().values()]

    def _user_ids(self) -> dict[str, str]:
        return {uid: user_id for uid, (user_id, _) in self._listed_users().items()}

    def _upsert_users(self, records: Sequence[Record]) -> int:
        present = self._listed_users()
        self._users = None
        with self._errors():
            for rec in records:
                if rec.get("uid") in (None, ""):
                    raise InvalidRequest("a user record lacks its uid", provider=self.name)
                uid = str(rec["uid"])
                attrs = user_attrs(rec, self.name)
                if uid not in present:
                    self.api.auth.admin.create_user(attrs)
                    continue
                user_id, current = present[uid]
                attrs.pop("id")
                for field in ("user_metadata", "app_metadata"):  # GoTrue merges these: null removes a key
                    for gone in set(current.get(field) or {}) - set(attrs[field]):
                        attrs[field][gone] = None
                self.api.auth.admin.update_user_by_id(user_id, attrs)
        return len(records)


def _uid_key(rec: Record) -> Key:
    return (rec["uid"],)
