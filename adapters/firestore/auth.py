"""Firebase Authentication users as the collection `auth.users` of a Firebase provider (kind firestore).

Turned on by options.auth in backends.yaml:

    options:
      auth:
        emulator_host: 127.0.0.1:9099   # else FIREBASE_AUTH_EMULATOR_HOST; production uses credentials_file
        hash_key: ${FIREBASE_HASH_KEY}  # the project's password hash parameters (console → Authentication →
        salt_separator: Bw==            #   Users → ⋮ → Password hash parameters): base64_signer_key,
        rounds: 8                       #   base64_salt_separator, rounds, mem_cost
        mem_cost: 14

Reading lists users with firebase_admin.auth.list_users (ExportedUserRecord: the password hash and salt are there
when the credential may see them) and maps them to adapters.userfiles records: display_name and photo_url go to
user_metadata, custom claims are app_metadata, the hash parameters come from options.auth. Writing uses
auth.import_users (1000 per call, replacing users with the same uid), with UserImportHash.scrypt for Firebase hashes
and UserImportHash.bcrypt for bcrypt ones. Firebase keeps no other user metadata: other keys are reported dropped.

`FirebaseAuthUsers` is mixed into FirestoreAdapter (firestore/adapter.py): its calls for `auth.users` come here and
its other calls go on to Firestore unchanged.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shiftover.adapters import canonical
from shiftover.adapters.base import Adapter, Capabilities, CollectionSchema, Filter, Key, Record
from shiftover.adapters.errors import (
    AuthenticationFailed,
    BackendError,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
)
from shiftover.adapters.query import Order
from shiftover.adapters.userfiles import (
    FIREBASE_SCRYPT,
    USERS,
    USERS_SCHEMA,
    FieldLimits,
    FirebaseScrypt,
    page,
    secret_text,
    select,
)

_KEPT_METADATA = ("display_name", "photo_url")
_ENV_LOCK = threading.Lock()  # firebase_admin reads FIREBASE_AUTH_EMULATOR_HOST when a client is made


class AuthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emulator_host: str | None = Field(None, description="host:port of the Auth emulator")
    hash_key: SecretStr | None = Field(None, description="base64_signer_key of the project's password hashes")
    salt_separator: str = "Bw=="
    rounds: int = Field(8, ge=1, le=8)
    mem_cost: int = Field(14, ge=1, le=14)

    def scrypt(self) -> FirebaseScrypt | None:
        if self.hash_key is None:
            return None
        return FirebaseScrypt(hash_key=self.hash_key, salt_separator=self.salt_separator, rounds=self.rounds,
                              mem_cost=self.mem_cost)


class FirebaseUsers:
    """Users of one Firebase project, through firebase_admin.auth."""

    def __init__(self, provider: str, project: str, options: AuthOptions, credentials_file: SecretStr | None) -> None:
        self.provider, self.project, self.options = provider, project, options
        self.credentials_file = credentials_file
        self._app: Any = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import firebase_admin
                from firebase_admin import auth, credentials
            except ModuleNotFoundError:
                raise DriverMissing("firebase-admin is not installed", hint="pip install firebase-admin") from None
            emulator = self.options.emulator_host or os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
            with self.errors():
                if emulator:
                    cred: Any = _anonymous(credentials)
                elif self.credentials_file is not None:
                    cred = credentials.Certificate(self.credentials_file.get_secret_value())
                else:
                    cred = credentials.ApplicationDefault()
                self._app = firebase_admin.initialize_app(cred, {"projectId": self.project},
                                                          name=f"shiftover-{self.provider}-{id(self)}")
                with _ENV_LOCK:
                    previous = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
                    if emulator:
                        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = emulator
                    try:
                        self._client = auth.Client(self._app)
                    finally:
                        if previous is None:
                            os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
                        else:
                            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = previous
        return self._client

    def close(self) -> None:
        if self._app is not None:
            import firebase_admin

            firebase_admin.delete_app(self._app)
            self._app = self._client = None

    @contextmanager
    def errors(self) -> Iterator[None]:
        from firebase_admin import exceptions as fe
        from google.auth import exceptions as ge

        secrets = [secret_text(self.options.hash_key)] if self.options.hash_key else []
        try:
            yield
        except BackendError:
            raise
        except fe.DeadlineExceededError as exc:
            raise ConnectionTimeout(f"Firebase Auth did not answer in time: {_text(exc, secrets)}", hint="retry",
                                    provider=self.provider) from None
        except (fe.UnavailableError, fe.InternalError, fe.ResourceExhaustedError) as exc:
            raise ProviderUnavailable(f"Firebase Auth is unavailable: {_text(exc, secrets)}", hint="retry",
                                      provider=self.provider) from None
        except (fe.PermissionDeniedError, fe.UnauthenticatedError, ge.GoogleAuthError) as exc:
            raise AuthenticationFailed(f"Firebase Auth refused the credentials: {_text(exc, secrets)}",
                                       hint="check options.credentials_file (Firebase Admin SDK service account)",
                                       provider=self.provider) from None
        except fe.UnknownError as exc:
            raise ProviderUnavailable(f"cannot reach Firebase Auth: {_text(exc, secrets)}", hint="retry",
                                      provider=self.provider) from None
        except fe.FirebaseError as exc:
            raise InvalidRequest(f"Firebase Auth refused the request: {_text(exc, secrets)}",
                                 provider=self.provider) from None
        except (ValueError, TypeError) as exc:
            raise UnsupportedValue(f"Firebase Auth cannot take the value: {_text(exc, secrets)}",
                                   provider=self.provider) from None

    # -- collection calls ----------------------------------------------------------------------------------------------
    def all(self) -> list[Record]:
        scrypt = self.options.scrypt()
        hasher = scrypt.hasher() if scrypt else {"algorithm": FIREBASE_SCRYPT}
        with self.errors():
            return [_record(u, hasher) for u in self.client.list_users(max_results=1000).iterate_all()]

    def scan(self, *, after: Key | None, until: Key | None, limit: int) -> list[Record]:
        return page(self.all(), lambda r: (r["uid"],), after=after, until=until, limit=limit)

    def find(self, where: Sequence[Filter], order_by: Order, limit: int | None,
             offset: int | None) -> list[Record]:
        return select(self.all(), where, order_by, limit, offset)

    def upsert(self, records: Sequence[Record]) -> int:
        groups: dict[str, tuple[Any, list[Any]]] = {}
        for rec in records:
            algorithm, hash_alg = self._hash_alg(rec)
            groups.setdefault(algorithm, (hash_alg, []))[1].append(self._import_record(rec))
        with self.errors():
            for hash_alg, users in groups.values():
                for start in range(0, len(users), 1000):
                    result = self.client.import_users(users[start:start + 1000], hash_alg=hash_alg)
                    if result.failure_count:
                        reasons = "; ".join(f"{users[start + e.index].uid}: {e.reason}" for e in result.errors[:5])
                        raise InvalidRequest(f"Firebase Auth refused {result.failure_count} user(s): {reasons}",
                                             provider=self.provider)
        return len(records)

    def delete(self, keys: Sequence[Key]) -> int:
        uids = [str(k[0]) for k in keys]
        present = {r["uid"] for r in self.all()}
        gone = [u for u in uids if u in present]
        with self.errors():
            for start in range(0, len(gone), 1000):
                self.client.delete_users(gone[start:start + 1000])
        return len(gone)

    def _hash_alg(self, rec: Record) -> tuple[str, Any]:
        from firebase_admin import auth

        if not rec.get("password_hash"):
            return "", None
        hasher = rec.get("password_hasher") or {}
        algorithm = str(hasher.get("algorithm", "")).upper()
        if algorithm == FIREBASE_SCRYPT:
            if hasher.get("signer_key") in (None, ""):
                raise InvalidRequest(f"user {rec['uid']!r} has a Firebase scrypt hash without the source project's "
                                     "hash parameters", hint="set options.auth.hash_key and the others on the source",
                                     provider=self.provider)
            key = (FIREBASE_SCRYPT, secret_text(hasher["signer_key"]), hasher["salt_separator"], hasher["rounds"],
                   hasher["mem_cost"])
            return repr(key), auth.UserImportHash.scrypt(
                key=_b64(secret_text(hasher["signer_key"])), rounds=int(hasher["rounds"]),
                memory_cost=int(hasher["mem_cost"]), salt_separator=_b64(hasher["salt_separator"]))
        if algorithm == "BCRYPT" or str(rec["password_hash"]).startswith("$2"):
            return "BCRYPT", auth.UserImportHash.bcrypt()
        raise UnsupportedValue(f"user {rec['uid']!r} has a {algorithm or 'unknown'} password hash that this adapter "
                               "cannot import into Firebase Auth", provider=self.provider)

    def _import_record(self, rec: Record) -> Any:
        from firebase_admin import auth

        meta = rec.get("user_metadata") or {}
        hashed = rec.get("password_hash")
        bcrypt = hashed and str(hashed).startswith("$2")
        return auth.ImportUserRecord(
            uid=str(rec["uid"]), email=rec.get("email"), email_verified=bool(rec.get("email_verified")),
            display_name=meta.get("display_name"), photo_url=meta.get("photo_url"), phone_number=rec.get("phone"),
            disabled=bool(rec.get("disabled")),
            user_metadata=auth.UserMetadata(_ms(rec.get("created_at")), _ms(rec.get("last_sign_in_at"))),
            custom_claims=canonical.jsonable(rec.get("app_metadata")) or None,
            password_hash=(str(hashed).encode() if bcrypt else _b64(hashed)) if hashed else None,
            password_salt=_b64(rec["password_salt"]) if hashed and rec.get("password_salt") else None)


class FirebaseAuthUsers(Adapter):
    """Mixed into FirestoreAdapter: the collection `auth.users` (when options.auth is set) beside its Firestore
    collections; every other name goes on to the next class."""

    options: Any  # the host's Options: auth, project, credentials_file

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._users: FirebaseUsers | None = None

    def narrowed(self, offers: Capabilities) -> Capabilities:
        return replace(super().narrowed(offers), auth=self.options.auth is not None)

    @property
    def users(self) -> FirebaseUsers:
        if self.options.auth is None:
            raise InvalidRequest(f"{USERS!r} needs options.auth on this Firebase provider",
                                 hint="add options.auth (emulator_host, or credentials_file, and the hash "
                                      "parameters)", provider=self.name)
        if self._users is None:
            project = self.options.project or (self.url or "").removeprefix("firestore://").strip("/")
            self._users = FirebaseUsers(self.name, project, self.options.auth, self.options.credentials_file)
        return self._users

    def close(self) -> None:
        if self._users is not None:
            self._users.close()
            self._users = None
        super().close()

    def collections(self) -> list[str]:
        names = super().collections()
        return [USERS, *names] if self.options.auth is not None else names

    def schema(self, name: str) -> CollectionSchema:
        return USERS_SCHEMA if name == USERS else super().schema(name)

    def create_collection(self, schema: CollectionSchema) -> None:
        if schema.name != USERS:  # every Firebase project has its users
            super().create_collection(schema)

    def drop_collection(self, name: str) -> None:
        if name == USERS:
            raise InvalidRequest("Shiftover does not delete every user of a Firebase project",
                                 hint="delete users by key", provider=self.name)
        super().drop_collection(name)

    def count(self, name: str) -> int:
        return len(self.users.all()) if name == USERS else super().count(name)

    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None,
             limit: int = 1000) -> list[Record]:
        if name == USERS:
            return self.users.scan(after=after, until=until, limit=limit)
        return super().scan(name, after=after, until=until, limit=limit)

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        if name == USERS:
            raise InvalidRequest("Firebase Auth does not tell when a user changed",
                                 hint="migrate auth.users with --strategy immediate", provider=self.name)
        return super().changes(name, since=since, limit=limit)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        return self.users.upsert(records) if name == USERS else super().upsert(name, records)

    def delete(self, name: str, keys: Sequence[Key]) -> int:
        return self.users.delete(keys) if name == USERS else super().delete(name, keys)

    def find(self, name: str, where: Sequence[Filter] = (), *, order_by: Order = (), limit: int | None = None,
             offset: int | None = None) -> list[Record]:
        if name == USERS:
            return self.users.find(where, order_by, limit, offset)
        return super().find(name, where, order_by=order_by, limit=limit, offset=offset)

    def field_limits(self, name: str) -> FieldLimits:
        if name != USERS:
            return FieldLimits()
        return FieldLimits(
            dropped={"user_metadata": f"Firebase keeps only {' and '.join(_KEPT_METADATA)} of it"},
            not_carried=("provider links (Google, Apple ... sign-in)", "MFA factors", "tenant",
                         "tokens_valid_after"))


def _anonymous(credentials: Any) -> Any:
    """firebase_admin wants a credential even for the emulator, which ignores it."""
    from google.auth.credentials import AnonymousCredentials

    class Anonymous(credentials.Base):
        def get_credential(self) -> Any:
            return AnonymousCredentials()

    return Anonymous()


def _record(u: Any, hasher: dict[str, Any]) -> Record:
    meta = {"display_name": u.display_name, "photo_url": u.photo_url}
    return {
        "uid": u.uid, "email": u.email.lower() if u.email else None, "email_verified": bool(u.email_verified),
        "phone": u.phone_number, "disabled": bool(u.disabled),
        "created_at": _at(u.user_metadata.creation_timestamp),
        "last_sign_in_at": _at(u.user_metadata.last_sign_in_timestamp),
        "user_metadata": {k: v for k, v in meta.items() if v}, "app_metadata": dict(u.custom_claims or {}),
        "password_hash": u.password_hash or None, "password_salt": u.password_salt or None,
        "password_hasher": dict(hasher) if u.password_hash else None,
    }


def _at(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc) if ms else None


def _ms(value: dt.datetime | None) -> int | None:
    return int(canonical.utc(value).timestamp() * 1000) if value else None


def _b64(text: Any) -> bytes:
    raw = str(text).strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def _text(exc: BaseException, secrets: list[str]) -> str:
    return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)[:500]
