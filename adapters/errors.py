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
        └── OrchestratorUnavailable   BACKEND_015  no Prefect API answers (unreachable URL, server start timed out)

Messages never carry secrets: adapters build them from redacted URLs, and `redact()` scrubs driver text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class BackendError(Exception):
    code = "BACKEND_000"
    transient = False

    def __init__(self, message: str, *, hint: str = "", provider: str | None = None) -> None:
        self.message = message
        self.hint = hint
        self.provider = provider
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" [{self.provider}]" if self.provider else ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{self.code}{where}: {self.message}{hint}"

    def __reduce__(self):  # survives pickling across Prefect/Dask workers
        return (_rebuild, (type(self), self.message, self.hint, self.provider, self.__dict__))


def _rebuild(cls, message, hint, provider, state):
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
    def __init__(self, message: str, *, failures: Iterable[str] = (), **kw) -> None:
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


class OrchestratorUnavailable(PermanentError):
    code = "BACKEND_015"


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.transient


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_KV_PASSWORD = re.compile(r"(password|passwd|pwd|secret|token|apikey|api_key)(\s*[=:]\s*)(\S+)", re.I)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove passwords from URLs, key=value secrets and any known secret string."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m[1]}{m[2]}***", text)
