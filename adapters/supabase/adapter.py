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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from pydantic import Field, HttpUrl, SecretStr

from shiftover.adapters.base import Adapter, Capabilities, CollectionSchema, KeyRange
from shiftover.adapters.errors import (
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
from shiftover.adapters.postgres.adapter import PostgresAdapter
from shiftover.adapters.supabase.auth import SupabaseAuthUsers
from shiftover.adapters.supabase.storage import SupabaseStorageFiles
from shiftover.adapters.userfiles import (
    is_users_or_files,
)


class SupabaseDatabase(PostgresAdapter):
    """The project's PostgreSQL, its API client, and what it says about RLS; SupabaseAdapter (below) adds users and
    files."""

    kind = "supabase"
    offers = replace(PostgresAdapter.offers, auth=True, storage=True)

    class Options(PostgresAdapter.Options):
        api_url: HttpUrl | None = Field(None, description="https://PROJECT.supabase.co: Auth and Storage")
        service_role_key: SecretStr | None = Field(None, description="the service_role key (bypasses RLS)")
        buckets: list[str] | None = Field(None, description="Storage buckets that are collections (default: all)")
        api_timeout_s: float = Field(20.0, gt=0)
        page_size: int = Field(500, ge=1, le=1000, description="users or objects per API list call")

    options: Options  # the validated options of this kind (base: Adapter.Options)

    def __init__(self, name: str, url: str | None, options: Any) -> None:
        super().__init__(name, url, options)
        self._api: Any = None
        self._http: Any = None
        self._rls_checked: set[str] = set()

    def narrowed(self, offers: Capabilities) -> Capabilities:
        """Users and files only with the Auth and Storage API configured (api_url and service_role_key)."""
        api = self.options.api_url is not None and self.options.service_role_key is not None
        return replace(super().narrowed(offers), auth=api, storage=api)

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
    def schema(self, name: str) -> CollectionSchema:
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

    def _copy_through_api(self, source: Adapter, name: str, rng: KeyRange) -> int:
        """copy_range_from for users and files: batches through the APIs, each replacing its sub-range."""
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

    # -- what a migration must say -------------------------------------------------------------------------------------
    def migration_notes(self, names: Sequence[str], *, as_target: bool, exists: bool = True,
                        source: Adapter | None = None) -> list[str]:
        """As the target: tables that will have no RLS policies here (Shiftover never disables any). A table created by
        the move from a PostgreSQL-family `source` carries the source's RLS flags and policies (postgres/schema.py);
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


class SupabaseAdapter(SupabaseStorageFiles, SupabaseAuthUsers, SupabaseDatabase):
    """Supabase: the tables of its PostgreSQL, `auth.users` (adapters/supabase/auth.py) and `storage/<bucket>`
    (adapters/supabase/storage.py); the first two classes serve those names and pass every other one on."""

    def served_natively(self, name: str) -> bool:
        return not is_users_or_files(name)
