"""Supabase: the project's PostgreSQL is the data plane; users and files go through Supabase Auth and Storage.

URL: the database connection string (Project Settings → Database), as for `postgresql`. options.schema picks the
schema whose tables are the collections (default `public`, the one Supabase exposes through its API); a migration into
Supabase creates its tables there. options.api_url (`https://PROJECT.supabase.co`) and options.service_role_key turn
on two more kinds of collection, read and written with supabase-py:

- `auth.users` — users through Auth's admin API (GET/POST /auth/v1/admin/users, GET/PUT/DELETE .../users/{id}).
  A uid that is a UUID in canonical form stays the Supabase user id; any other uid (Firebase uids are 28 characters,
  not UUIDs) gets the id uuid5(UID_NAMESPACE, uid) and is kept in app_metadata.firebase_uid, which is read back as
  the uid. A Firebase scrypt hash is written as Auth's `$fbscrypt$v=1,n=MEM_COST,r=ROUNDS,p=1,ss=..,sk=..$SALT$HASH`
  password_hash (Supabase Auth verifies it at sign-in, supabase/auth#1768); bcrypt and argon2 hashes as they are.
- `storage/<bucket>` — objects through Storage (list, download, upload with content type and metadata, remove);
  options.buckets limits which buckets are collections (default: all).

Row level security: Shiftover copies as the role of the connection string and never disables or creates policies.
A table with RLS enabled is refused unless that role bypasses RLS (`postgres` and the service role do; a table's owner
does unless FORCE ROW LEVEL SECURITY): a role that saw only some rows would copy and compare only those. A migration
into Supabase creates tables without policies; the report lists the tables that have none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, HttpUrl, SecretStr

from adapters import canonical
from adapters.base import Adapter, CollectionSchema, Filter, Key, KeyRange, Record
from adapters.errors import (
    AuthenticationFailed,
    BackendError,
    CollectionNotFound,
    ConfigInvalid,
    ConnectionTimeout,
    DriverMissing,
    InvalidRequest,
    ProviderUnavailable,
    UnsupportedValue,
    redact,
)
from adapters.postgres import PostgresAdapter
from adapters.supabase_auth import user_attrs, user_record
from adapters.userfiles import (
    PASSWORD_FIELDS,
    USERS,
    USERS_SCHEMA,
    FieldLimits,
    bucket_of,
    file_record,
    files_schema,
    is_users_or_files,
    page,
    select,
)


class SupabaseAdapter(PostgresAdapter):
    kind = "supabase"
    capabilities = replace(PostgresAdapter.capabilities, auth=True, storage=True)

    class Options(PostgresAdapter.Options):
        api_url: HttpUrl | None = Field(None, description="https://PROJECT.supabase.co: Auth and Storage")
        service_role_key: SecretStr | None = Field(None, description="the service_role key (bypasses RLS)")
        buckets: list[str] | None = Field(None, description="Storage buckets that are collections (default: all)")
        api_timeout_s: float = Field(20.0, gt=0)
        page_size: int = Field(500, ge=1, le=1000, description="users or objects per API list call")

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        api = options.api_url is not None and options.service_role_key is not None
        self.capabilities = replace(type(self).capabilities, auth=api, storage=api)
        self._api: Any = None
        self._http: Any = None
        self._users: dict[str, tuple[str, Record]] | None = None  # uid -> (Supabase id, record); reset on writes
        self._bucket_ids: list[str] | None = None
        self._paths: dict[str, list[str]] = {}
        self._rls_checked: set[str] = set()

    # -- API client and errors ---------------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._api is None:
            if self.options.api_url is None or self.options.service_role_key is None:
                raise ConfigInvalid("users and files need options.api_url and options.service_role_key",
                                    hint="add both under the provider's options (Project Settings → API)",
                                    provider=self.name)
            try:
                import httpx
                from supabase import Client, ClientOptions
            except ModuleNotFoundError:
                raise DriverMissing("supabase-py is not installed", hint="pip install supabase") from None
            self._http = httpx.Client(timeout=self.options.api_timeout_s, follow_redirects=True)
            opts = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=self._http)
            with self._errors():
                self._api = Client(str(self.options.api_url).rstrip("/"),
                                   self.options.service_role_key.get_secret_value(), opts)
        return self._api

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = self._api = None
        super().close()

    def _secrets(self) -> list[str]:
        key = self.options.service_role_key.get_secret_value() if self.options.service_role_key else ""
        return [*self._password(), key]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQL errors as PostgreSQL's; Auth, Storage and HTTP errors by status; never with the key in the text."""
        import httpx
        from storage3.exceptions import StorageApiError
        from supabase_auth.errors import AuthApiError, AuthError, AuthRetryableError

        try:
            with super()._errors():
                yield
        except BackendError:
            raise
        except httpx.TimeoutException as exc:
            raise ConnectionTimeout(f"Supabase did not answer in time: {self._text(exc)}", hint="retry",
                                    provider=self.name) from None
        except httpx.RequestError as exc:
            raise ProviderUnavailable(f"cannot reach Supabase at {self.options.api_url}: {self._text(exc)}",
                                      hint="check options.api_url and the network", provider=self.name) from None
        except AuthRetryableError as exc:
            raise ProviderUnavailable(f"Supabase Auth is unavailable: {self._text(exc)}", hint="retry",
                                      provider=self.name) from None
        except AuthApiError as exc:
            raise self._by_status("Auth", exc.status, f"{exc.code or ''} {exc.message}".strip()) from None
        except StorageApiError as exc:
            raise self._by_status("Storage", exc.status, f"{exc.code} {exc.message}") from None
        except AuthError as exc:
            raise InvalidRequest(f"Supabase Auth refused the request: {self._text(exc)}", provider=self.name) from None
        except ValueError as exc:  # supabase-py's own checks: ids that are not UUIDs, dot segments in paths
            raise UnsupportedValue(f"Supabase cannot take the value: {self._text(exc)}", provider=self.name) from None

    def _text(self, exc: BaseException) -> str:
        return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self._secrets())[:500]

    def _by_status(self, service: str, status: int | str, text: str) -> BackendError:
        code = int(status) if str(status).isdigit() else 0
        text = redact(text, self._secrets())[:500]
        if code in (401, 403):
            return AuthenticationFailed(f"Supabase {service} refused the key: {text}",
                                        hint="options.service_role_key must be the project's service_role key",
                                        provider=self.name)
        if code == 404:
            return CollectionNotFound(f"Supabase {service}: {text}", provider=self.name)
        if code == 429 or code >= 500:
            return ProviderUnavailable(f"Supabase {service} is unavailable ({code}): {text}", hint="retry",
                                       provider=self.name)
        return InvalidRequest(f"Supabase {service} refused the request ({code}): {text}", provider=self.name)

    def _probe(self, *, canary: bool) -> list[str]:
        checks = super()._probe(canary=canary)
        if self.capabilities.auth:  # one small read from each API: a dead Auth or Storage is a sick Supabase
            with self._errors():
                self.api.auth.admin.list_users(page=1, per_page=1)
                self.api.storage.list_buckets()
            checks += ["auth", "storage"]
        return checks

    # -- catalogue ----------------------------------------------------------------------------------------------------
    def collections(self) -> list[str]:
        names = super().collections()
        if self.capabilities.auth:
            names += [USERS, *(f"storage/{b}" for b in self._buckets())]
        return names

    def _buckets(self) -> list[str]:
        if self._bucket_ids is None:
            with self._errors():
                self._bucket_ids = sorted(b.id for b in self.api.storage.list_buckets())
        existing, wanted = self._bucket_ids, self.options.buckets
        return existing if wanted is None else [b for b in existing if b in wanted]

    def schema(self, name: str) -> CollectionSchema:
        if name == USERS:
            return USERS_SCHEMA
        bucket = bucket_of(name)
        if bucket is not None:
            if bucket not in self._buckets():
                raise CollectionNotFound(f"no Storage bucket {bucket!r}", hint="check options.buckets and the name",
                                         provider=self.name)
            return files_schema(name)
        result = super().schema(name)
        self._check_rls(name)
        return result

    def _check_rls(self, name: str) -> None:
        """Refuse a table with RLS enabled when this role would see only the rows its policies allow."""
        if name in self._rls_checked:
            return
        stmt = sa.text(
            "SELECT c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls OR (c.relowner = r.oid AND NOT "
            "c.relforcerowsecurity)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_roles r ON r.rolname = current_user WHERE n.nspname = :s AND c.relname = :t")
        with self._conn() as conn:
            limited = conn.execute(stmt, {"s": self.schema_name, "t": name}).scalar()
        if limited:
            raise AuthenticationFailed(
                f"table {name!r} has row level security and the connection's role does not bypass it, so Shiftover "
                "would copy and compare only the rows the policies let it see",
                hint="connect as postgres (the connection string of Project Settings → Database) or a role with "
                     "BYPASSRLS; Shiftover never disables policies", provider=self.name)
        self._rls_checked.add(name)

    def create_collection(self, schema: CollectionSchema) -> None:
        if schema.name == USERS:
            return  # every Supabase project has its users
        bucket = bucket_of(schema.name)
        if bucket is None:
            return super().create_collection(schema)
        if bucket not in self._buckets():
            with self._errors():
                self.api.storage.create_bucket(bucket, bucket, {"public": False})
            self._bucket_ids = None

    def create_for_bulk_copy(self, schema: CollectionSchema) -> None:
        if is_users_or_files(schema.name):  # Auth and Storage are filled through their APIs, never by COPY
            return self.create_collection(schema)
        return super().create_for_bulk_copy(schema)

    def drop_collection(self, name: str) -> None:
        if name == USERS:
            raise InvalidRequest("Shiftover does not delete every user of a Supabase project",
                                 hint="delete users by key, or in the dashboard", provider=self.name)
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
        if name == USERS:
            return len(self._list_users())
        bucket = bucket_of(name)
        return len(self._object_paths(bucket)) if bucket is not None else super().count(name)

    # -- data ----------------------------------------------------------------------------------------------------------
    def scan(self, name: str, *, after: Key | None = None, until: Key | None = None, limit: int = 1000) -> list[Record]:
        if name == USERS:
            return page(self._list_users(), _uid_key, after=after, until=until, limit=limit)
        bucket = bucket_of(name)
        if bucket is None:
            return super().scan(name, after=after, until=until, limit=limit)
        paths = [p for p in self._object_paths(bucket)
                 if (after is None or (p,) > after) and (until is None or (p,) <= until)][:limit]
        return [self._read_object(bucket, p) for p in paths]

    def key_boundaries(self, name: str, every: int) -> list[Key]:
        if name == USERS:
            return sorted(_uid_key(r) for r in self._list_users())[every - 1::every]
        bucket = bucket_of(name)
        if bucket is not None:  # from the listing: a scan would download every object
            return [(p,) for p in self._object_paths(bucket)[every - 1::every]]
        return super().key_boundaries(name, every)

    def replace_range(self, name: str, rng: KeyRange, records: Sequence[Record]) -> int:
        if is_users_or_files(name):
            return Adapter.replace_range(self, name, rng, records)
        return super().replace_range(name, rng, records)

    def changes(self, name: str, *, since: dt.datetime | None, limit: int = 1000) -> list[Record]:
        if is_users_or_files(name):
            raise InvalidRequest(f"Supabase does not list {name!r} by change time",
                                 hint="migrate users and files with --strategy immediate", provider=self.name)
        return super().changes(name, since=since, limit=limit)

    def upsert(self, name: str, records: Sequence[Record]) -> int:
        if name == USERS:
            return self._upsert_users(records)
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
        if name == USERS:
            ids = self._user_ids()
            gone = [ids[str(k[0])] for k in keys if str(k[0]) in ids]
            self._users = None
            with self._errors():
                for user_id in gone:
                    self.api.auth.admin.delete_user(user_id)
            return len(gone)
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

    def find(self, name: str, where: Sequence[Filter] = (), *,
             order_by: Sequence[tuple[str, Literal["asc", "desc"]]] = (), limit: int | None = None) -> list[Record]:
        if name == USERS:
            return select(self.scan(name, limit=10**9), where, order_by, limit)
        bucket = bucket_of(name)
        if bucket is None:
            return super().find(name, where, order_by=order_by, limit=limit)
        keys = [f for f in where if f.field == "path" and f.op == "eq"]
        paths = [str(keys[0].value)] if keys else self._object_paths(bucket)
        present = set(self._object_paths(bucket))
        return select([self._read_object(bucket, p) for p in paths if p in present], where, order_by, limit)

    def copy_range_from(self, source: Adapter, name: str, rng: KeyRange) -> int:
        if not is_users_or_files(name):
            return super().copy_range_from(source, name, rng)
        rows, lo = 0, rng.lo  # Auth and Storage have no COPY: batches through the APIs, each replacing its sub-range
        batches = source.scan_range(name, rng, batch=self.options.page_size)
        batch = next(batches, [])
        while True:
            following = next(batches, None) if len(batch) == self.options.page_size else None
            hi = tuple(batch[-1][k] for k in self.key_of(name)) if following else rng.hi
            self.replace_range(name, KeyRange(lo, hi), batch)
            rows += len(batch)
            if not following:
                return rows
            lo, batch = hi, following

    # -- freezes and capture cover the data plane only -----------------------------------------------------------------
    def freeze(self, names: Sequence[str], *, reason: str) -> None:
        super().freeze([n for n in names if not is_users_or_files(n)], reason=reason)

    def unfreeze(self, names: Sequence[str]) -> None:
        super().unfreeze([n for n in names if not is_users_or_files(n)])

    def capture_start(self, names: Sequence[str]) -> None:
        if any(is_users_or_files(n) for n in names):
            return Adapter.capture_start(self, names)
        super().capture_start(names)

    # -- what a migration must say -------------------------------------------------------------------------------------
    def field_limits(self, name: str) -> FieldLimits:
        if name == USERS:
            return FieldLimits(
                dropped={"created_at": "Supabase Auth sets a user's creation time itself",
                         "last_sign_in_at": "Supabase Auth sets it at the next sign-in"},
                unverifiable={f: "Supabase Auth keeps password hashes but its API never returns them"
                              for f in PASSWORD_FIELDS},
                not_carried=("identities (OAuth links)", "MFA factors", "sessions", "role", "banned_until date"))
        if bucket_of(name) is not None:
            return FieldLimits(not_carried=("cache_control", "object owner", "version"))
        return FieldLimits()

    def migration_notes(self, names: Sequence[str], *, as_target: bool, exists: bool = True,
                        source: Adapter | None = None) -> list[str]:
        """As the target: tables that will have no RLS policies here (Shiftover never disables any). A table created by
        the move from a PostgreSQL-family `source` carries the source's RLS flags and policies (adapters.pg_schema);
        one created from another engine has none."""
        tables = [n for n in names if not is_users_or_files(n)]
        if not as_target or not tables:
            return []
        if not exists and not (source is not None and source.capabilities.bulk_copy == "postgresql"):
            return [f"RLS: {t!r} will be created in {self.schema_name!r} with row level security off and no policies: "
                    "anyone with the anon key can read and write it through the Supabase API until you enable RLS "
                    "and write policies (Shiftover creates none)" for t in tables]
        holder = self if exists else source
        stmt = sa.text(
            "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind = 'r' AND c.relname = ANY(:t) AND NOT EXISTS (SELECT 1 FROM "
            "pg_policies p WHERE p.schemaname = n.nspname AND p.tablename = c.relname) ORDER BY 1")
        with holder._conn() as conn:  # type: ignore[union-attr]
            rows = conn.execute(stmt, {"s": holder.schema_name, "t": tables}).all()  # type: ignore[union-attr]
        how = "has" if exists else f"moves from {holder.name!r} with"  # type: ignore[union-attr]
        return [f"RLS: {t!r} {how} row level security off and no policies: anyone with the anon key can read and "
                "write it through the Supabase API (Shiftover creates no policies)" if not on else
                f"RLS: {t!r} {how} row level security on and no policies: only the service role can use it"
                for t, on in rows]

    # -- users ---------------------------------------------------------------------------------------------------------
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

    # -- files ---------------------------------------------------------------------------------------------------------
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


def _uid_key(rec: Record) -> Key:
    return (rec["uid"],)


def _object_path(rec: Record) -> str:
    path = str(rec.get("path") or "")
    if not path or path.startswith("/") or path.endswith("/"):
        raise UnsupportedValue(f"{path!r} cannot be a Storage object path")
    return path
