"""Every error Shiftover raises, with a stable code and what to do about it.

    BackendError                      code, message, hint, provider
    ├── TransientError                a retry can succeed (tasks retry these)
    │   ├── ConnectionTimeout         BACKEND_005
    │   ├── ProviderUnavailable       BACKEND_006  refused, dropped, server restarting
    │   └── WriteFrozen               BACKEND_010  a cutover holds a write freeze
    └── PermanentError                a retry cannot help
        ├── ProviderNotFound          BACKEND_001
        ├── ConfigInvalid             BACKEND_002
        ├── MigrationFailed           BACKEND_003
        │   └── CutoverBlocked        BACKEND_003  an expectation failed; names the key ranges
        ├── HealthCheckFailed         BACKEND_004
        ├── AuthenticationFailed      BACKEND_007
        ├── CollectionNotFound        BACKEND_008
        ├── UnsupportedValue          BACKEND_009
        ├── StaleEpoch                BACKEND_011  fencing: the writer holds an old epoch
        ├── PointerConflict           BACKEND_012  compare-and-swap lost to another switch
        ├── DriverMissing             BACKEND_013  an optional driver is not installed
        ├── InvalidRequest            BACKEND_014  the engine refused the statement
        ├── LeaseHeld                 BACKEND_015  another run holds this provider (names the holder)
        ├── SchemaRefused             BACKEND_016  the target cannot hold the source's schema (names what is missing)
        ├── StandbyNotInSync          BACKEND_017  a standby's sync never completed, its lag is unknown, or sync
                                                   cannot see deletes on this primary
        ├── OrchestratorUnavailable   BACKEND_018  no Prefect API answers (unreachable URL, server start timed out),
        │                                          or no Dask scheduler at --dask-address
        ├── ObjectNotFound            BACKEND_019  the storage service has no file at that bucket and path
        └── ObjectExists              BACKEND_020  an upload without upsert found a file already there

Messages never carry secrets: adapters build them from redacted URLs, and `redact()` scrubs driver text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


class BackendError(Exception):
    code = "BACKEND_000"
    transient = False

    def __init__(self, message: str, *, hint: str = "", provider: str | None = None) -> None:
        self.message = message
        self.hint = hint
        self.provider = provider
        super().__init__(str(self))

    def __str__(self) -> str:
        hint = f" — {self.hint}" if self.hint else ""
        return f"{self.headline}{hint}"

    @property
    def headline(self) -> str:
        """Code, provider and message without the hint: for a wrapper that gives the hint once, as its own."""
        where = f" [{self.provider}]" if self.provider else ""
        return f"{self.code}{where}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling across Prefect/Dask workers
        return (_rebuild, (type(self), self.message, self.hint, self.provider, self.__dict__))


def _rebuild(cls: type[BackendError], message: str, hint: str | None, provider: str | None,
             state: dict[str, Any]) -> BackendError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


class TransientError(BackendError):
    transient = True


class PermanentError(BackendError):
    pass


class ConnectionTimeout(TransientError):
    code = "BACKEND_005"


class ProviderUnavailable(TransientError):
    code = "BACKEND_006"


class WriteFrozen(TransientError):
    code = "BACKEND_010"


class ProviderNotFound(PermanentError):
    code = "BACKEND_001"


class ConfigInvalid(PermanentError):
    code = "BACKEND_002"


class MigrationFailed(PermanentError):
    code = "BACKEND_003"


class CutoverBlocked(MigrationFailed):
    def __init__(self, message: str, *, failures: Iterable[str] = (), **kw: Any) -> None:
        self.failures = list(failures)
        super().__init__(message, **kw)


class HealthCheckFailed(PermanentError):
    code = "BACKEND_004"


class AuthenticationFailed(PermanentError):
    code = "BACKEND_007"


class CollectionNotFound(PermanentError):
    code = "BACKEND_008"


class UnsupportedValue(PermanentError):
    code = "BACKEND_009"


class StaleEpoch(PermanentError):
    code = "BACKEND_011"


class PointerConflict(PermanentError):
    code = "BACKEND_012"


class DriverMissing(PermanentError):
    code = "BACKEND_013"


class InvalidRequest(PermanentError):
    code = "BACKEND_014"


class LeaseHeld(PermanentError):
    code = "BACKEND_015"


class StandbyNotInSync(PermanentError):
    code = "BACKEND_017"


class SchemaRefused(PermanentError):
    code = "BACKEND_016"


class OrchestratorUnavailable(PermanentError):
    code = "BACKEND_018"


class ObjectNotFound(PermanentError):
    code = "BACKEND_019"


class ObjectExists(PermanentError):
    code = "BACKEND_020"


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.transient


_SCHEME = r"[a-z][a-z0-9+.\-]*://"
# scheme://user:PASSWORD@host — the password runs to the last `@` on the line that is followed by a host (so `/`,
# `@`, `:`, `#`, `?` and spaces inside it are covered), and never into a second URL.
_URL_PASSWORD = re.compile(
    rf"(?P<scheme>{_SCHEME})(?P<user>[^:/@\s]*):(?P<pw>(?:(?!{_SCHEME})[^\n])*)@(?P<host>[^@\s/?#'\"]*)"
    r"(?=[/?#\s'\"]|$)", re.I)
# ?apikey=…, &access_token=…, &sig=…: query parameters whose name says it holds a secret
_QUERY_SECRET = re.compile(
    r"(?P<k>[?&;][^=&#\s]*?(?:key|token|secret|passw(?:or)?d|pwd|sig|signature|credential)[^=&#\s]*=)"
    r"(?P<v>[^&#\s]*)", re.I)
# password=…, "password": "…", password='a b\'c' (libpq key=value DSN), api_key: …, client_secret=…
_KV_SECRET = re.compile(
    r"(?P<k>\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|role[_-]?key)[\"']?\s*[=:]\s*)"
    r"(?P<v>'(?:[^'\\\n]|\\.)*'?|\"(?:[^\"\\\n]|\\.)*\"?|[^\s,;&]+)", re.I)
_BEARER = re.compile(r"\b(?P<k>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+")
_MIN_SECRET = 3  # shorter strings would blank out ordinary text; the patterns above still mask them in URLs


_HOSTLIKE = re.compile(r"[\w.\-\[\]:%,~]*")


def url_secrets(url: str | None) -> list[str]:
    """The secrets inside one URL, to pass to `redact`: its password (whatever characters it holds, up to any `@`
    that a host follows), the pieces of a password a driver may cut at a raw `@`, and the values of secret-named
    query parameters — each also in its URL-encoded and decoded forms."""
    if not url or "://" not in url:
        return []
    rest = url.split("://", 1)[1]
    found: list[str] = []
    for i, char in enumerate(rest):
        if char == "@" and ":" in rest[:i] and _HOSTLIKE.fullmatch(re.split(r"[/?#]", rest[i + 1:], maxsplit=1)[0]):
            password = rest[:i].split(":", 1)[1]
            found += [password, *password.split("@")]
    found += [q["v"] for q in _QUERY_SECRET.finditer(url) if q["v"]]
    found += [k["v"].strip("'\"") for k in _KV_SECRET.finditer(url.split("?", 1)[-1]) if k["v"]]
    return _variants(found)


def _variants(secrets: Iterable[str]) -> list[str]:
    from urllib.parse import quote, quote_plus, unquote, unquote_plus

    out: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, unquote(secret), unquote_plus(secret)):
            out |= {form, quote(form, safe=""), quote_plus(form), quote(form, safe="@:/!$&'()*+,;=")}
            out |= {repr(form)[1:-1]}  # as it shows inside a repr() of a string (escaped quotes, backslashes)
    return sorted((s for s in out if len(s) >= _MIN_SECRET), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets from text: every known secret (in its URL-encoded and decoded forms too), URL passwords whatever
    characters they hold, secret query parameters, key=value secrets (quoted or not) and bearer tokens."""
    for secret in _variants(secrets):
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@{m['host']}", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['k']}***", text)
    text = _KV_SECRET.sub(lambda m: f"{m['k']}***", text)
    return _BEARER.sub(lambda m: f"{m['k']} ***", text)
