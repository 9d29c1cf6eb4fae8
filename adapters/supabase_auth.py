"""Supabase Auth (GoTrue) users as canonical records, and back: ids, metadata, bans and password hashes.

A user whose uid is not a UUID (a Firebase uid) gets the id uuid5(UID_NAMESPACE, uid), and the uid is kept in
app_metadata.firebase_uid, which is read back as the record's uid.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from adapters import canonical
from adapters.base import Record
from adapters.errors import InvalidRequest, UnsupportedValue
from adapters.userfiles import FIREBASE_SCRYPT, secret_text

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
