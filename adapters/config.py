"""backends.yaml as typed models. `load_config(path)` is the only way in; there is no global settings object.

Secrets (URLs, keys) are SecretStr and `${ENV_VAR}` / `${ENV_VAR:-default}` are substituted before validation. Every
problem with the file becomes one ConfigInvalid (BACKEND_002) that names the field path and says what to do.
Relative SQLite paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from shiftover.adapters import safe_yaml
from shiftover.adapters.base import CanonicalType
from shiftover.adapters.errors import BackendError, ConfigInvalid, redact, url_secrets
from shiftover.adapters.strategies import Strategy

_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    kind: str
    url: SecretStr | None = None
    priority: int = Field(100, description="lower is preferred when choosing a standby")
    role: Literal["primary", "standby", "none"] = "none"
    options: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from shiftover.adapters.kinds import kinds

        if kind not in kinds():
            raise ValueError(f"unknown provider kind {kind!r}; use one of: {', '.join(kinds())}")
        return kind

    def display_url(self) -> str:
        if self.url is None:
            return "-"
        url = self.url.get_secret_value()
        return redact(url, url_secrets(url))


class ControlConfig(_Strict):
    url: SecretStr = SecretStr("sqlite:///data/control.db")
    lease_ttl_s: float = Field(30.0, ge=2, description="a run's lease on a provider expires this long after its last "
                               "heartbeat (a killed run's providers are free again after it)")
    heartbeat_s: float = Field(5.0, gt=0, description="how often a running run renews its leases")

    @field_validator("url")
    @classmethod
    def _engine_url(cls, url: SecretStr) -> SecretStr:
        control_url_problem(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> ControlConfig:
        if self.heartbeat_s * 2 > self.lease_ttl_s:
            raise ValueError("control.heartbeat_s must be at most half of control.lease_ttl_s")
        return self


class SyncPolicy(_Strict):
    method: Literal["capture", "updated_at"] = Field(
        "capture", description="capture: the primary's change capture (deletes included, no updated_at column "
        "needed; PostgreSQL, SQLite); updated_at: poll changes(since) by an updated_at column or stamp (deletes "
        "are NOT replicated)")
    chunk_rows: int = Field(50_000, ge=1, description="records per key range of a standby's initial full copy")


_PARSED: dict[tuple[str, bytes, bytes], Config] = {}  # load_config's parsed files: path, content, variables
_CONTROL_FORMS = "sqlite:///PATH or postgresql+psycopg://user:password@host:5432/db"


def control_url_problem(url: str) -> None:
    """Raise ValueError (never naming the URL: it may hold a password) when the control store cannot use `url`."""
    import sqlalchemy as sa

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"the control store is SQLite or PostgreSQL: write {_CONTROL_FORMS}")
    if "\x00" in url:
        raise ValueError("the URL holds a NUL character")
    if scheme.startswith("sqlite") and not url.split("://", 1)[1].startswith("/"):
        raise ValueError("a SQLite URL has three slashes: sqlite:///relative/path or sqlite:////absolute/path")
    try:
        parsed = sa.engine.make_url(url)
        port = parsed.port
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise ValueError(f"not a valid URL; write {_CONTROL_FORMS} (URL-encode special characters in the "
                         "password)") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError("the port must be between 1 and 65535")


class HealthPolicy(_Strict):
    timeout_s: float = Field(2.0, gt=0, description="a probe slower than this fails")
    response_time_ms: float = Field(1000, gt=0, description="a probe slower than this counts as degraded")
    error_rate: float = Field(0.05, ge=0, le=1, description="failed share of probes over the window that is unhealthy")
    availability: float = Field(0.99, ge=0, le=1, description="required share of successful probes over the window")
    window_s: float = Field(300, gt=0)
    canary: bool = Field(False, description="write/read/delete a canary record in each probe")
    history_days: float = Field(30, ge=0, description="probes older than this are deleted as new ones are recorded; "
                                "0 keeps every probe")
    debounce: int = Field(2, ge=1, description="consecutive sweeps that must agree before a provider's state changes "
                          "(1: at once); one slow or failed probe on a busy machine then changes nothing")

    @model_validator(mode="after")
    def _history_covers_window(self) -> HealthPolicy:
        if self.history_days and self.history_days * 86_400 < self.window_s:
            raise ValueError(f"history_days ({self.history_days:g}) keeps less than window_s ({self.window_s:g} s) "
                             "of probes: raise it, or set 0 to keep every probe")
        return self

    def kept(self) -> dt.timedelta | None:
        """How long probes are kept; None: for ever."""
        return dt.timedelta(days=self.history_days) if self.history_days else None


class FailoverPolicy(_Strict):
    enabled: bool = True
    consecutive_failures: int = Field(3, ge=1)
    monitor_interval_s: float = Field(1.0, gt=0)
    retry_interval_s: float = Field(0.5, gt=0, description="after a failed probe of the active provider, the next "
                                    "one comes this soon (at most monitor_interval_s) until consecutive_failures "
                                    "is reached: a refused connection fails at once, and need not wait a whole "
                                    "interval to be confirmed")
    sweep_interval_s: float = Field(30, ge=10)
    cooldown_s: float = Field(60, ge=0, description="no second automatic switch within this time")
    fallback: list[str] = Field(default_factory=list, description="standby order; empty means by priority")
    failback: Literal["manual", "automatic"] = "manual"
    failback_stable_s: float = Field(300, ge=0)
    router_follow_s: float = Field(2.0, gt=0, description="how stale the router's view of the pointer may be")


class CollectionMapping(_Strict):
    """How one collection's records change shape on the way (see adapters/mapping.py)."""

    flatten: list[str] = Field(default_factory=list, description="nested fields moved into columns, e.g. address.city")
    columns: dict[str, str] = Field(default_factory=dict, description="column name per flattened path "
                                    "(default: the path with _ for .)")
    types: dict[str, CanonicalType] = Field(default_factory=dict, description="canonical type per target column")

    @field_validator("flatten")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for p in paths:
            parts = p.split(".")
            if len(parts) < 2 or not all(parts):
                raise ValueError(f"{p!r} is not a nested field path; write it as parent.field (e.g. address.city)")
        if len(set(paths)) != len(paths):
            raise ValueError("a path is listed twice")
        return paths

    @field_validator("columns")
    @classmethod
    def _names(cls, columns: dict[str, str]) -> dict[str, str]:
        for path, column in columns.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column):
                raise ValueError(f"column name {column!r} for {path!r} must be letters, digits and _")
        return columns


DASK_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://[^\s/]+:\d+")


def check_dask_address(value: str) -> str:
    """A Dask scheduler's address as dask.distributed takes it: scheme://host:port."""
    value = value.strip()
    if not DASK_ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not a Dask scheduler address: write it as tcp://HOST:PORT (the address "
                         "`dask scheduler` prints; tls://, ucx://, ws:// also work)")
    return value


class MigrationDefaults(_Strict):
    strategy: Strategy = Strategy.immediate  # what `shiftover migrate` runs without --strategy
    batch_size: int = Field(5000, ge=1, le=100_000)
    chunk_rows: int = Field(50_000, ge=1)
    workers: int = Field(2, ge=1, le=64)
    freeze_wait_s: float = Field(5.0, ge=0, description="how long router writes wait on a freeze before failing")
    max_freeze_s: float = Field(60.0, gt=0, description="an immediate migration expected to freeze the source's "
                                "writes longer than this is flagged (dry run and report), pointing to blue_green")
    mappings: dict[str, CollectionMapping] = Field(default_factory=dict, description="per collection: nested fields "
                                                   "to flatten into columns, column names and types")
    sample_size: int = Field(200, ge=1, description="source records read to infer the types of flattened fields")
    dask_address: str | None = Field(None, description="a running Dask scheduler (tcp://host:8786) that `--runner "
                                     "dask` sends the chunk tasks to; empty: a local cluster per copy")

    @field_validator("dask_address")
    @classmethod
    def _dask_address(cls, value: str | None) -> str | None:
        return check_dask_address(value) if value else None


class ServiceRoutes(_Strict):
    """`services:` — which provider serves a service or a collection, whatever the pointer says.

    Precedence, for a collection's records: a gradual migration's route in the control store, then
    `services.collections.<name>`, then `services.db`, then the active-backend pointer. Files: `services.storage`, then
    the pointer. A failover moves the pointer only: whatever is pinned here stays on its provider, up or down.
    """

    db: str | None = Field(None, description="provider for every collection not listed under collections (and raw "
                           "SQL); empty: the pointer")
    storage: str | None = Field(None, description="provider whose files backend.storage serves; empty: the pointer")
    collections: dict[str, str] = Field(default_factory=dict, description="provider per collection")

    def named(self) -> list[tuple[str, str]]:
        """(field path under services, provider name) for every route set."""
        pairs = [("db", self.db), ("storage", self.storage)]
        return [(path, name) for path, name in pairs if name] + [
            (f"collections.{c}", name) for c, name in self.collections.items()]

    def provider_for(self, collection: str) -> str | None:
        return self.collections.get(collection, self.db)


class Config(_Strict):
    providers: dict[str, ProviderConfig]
    services: ServiceRoutes = Field(default_factory=ServiceRoutes)
    control: ControlConfig = Field(default_factory=ControlConfig)
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    failover: FailoverPolicy = Field(default_factory=FailoverPolicy)
    migration: MigrationDefaults = Field(default_factory=MigrationDefaults)
    sync: SyncPolicy = Field(default_factory=SyncPolicy)
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> Config:
        primaries = [n for n, p in self.providers.items() if p.role == "primary"]
        if len(primaries) > 1:
            raise ValueError(f"only one provider may have role: primary (found {', '.join(primaries)})")
        for name in self.failover.fallback:
            if name not in self.providers:
                raise ValueError(f"failover.fallback names {name!r}, which is not under providers")
        return self

    def primary(self) -> str:
        """The provider the pointer starts on: role primary, else the lowest priority number (first in the file)."""
        for name, p in self.providers.items():
            if p.role == "primary":
                return name
        return min(self.providers, key=lambda n: self.providers[n].priority)


def _interpolate(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m["name"], m["default"])
            if value is None:
                raise ConfigInvalid(
                    f"{path}: environment variable {m['name']} is not set",
                    hint=f"export {m['name']}=... or write ${{{m['name']}:-default}}",
                )
            return value

        return _ENV.sub(sub, node)
    return node


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith("sqlite:////") or url == "sqlite:///:memory:":
        return url
    rest = url[len(prefix) :]
    return prefix + str((base / rest).resolve())


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before") or str(item).startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def validation_error(exc: ValidationError, source: str) -> ConfigInvalid:
    first = exc.errors()[0]
    path = _field_path(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        hint = "remove it or check its spelling"
    elif first["type"] == "missing":
        hint = "add it"
    else:
        hint = f"fix {path}"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return ConfigInvalid(f"{source}: {_clip(path)}: {_clip(redact(msg))}{more}", hint=_clip(hint))


def _clip(text: str, limit: int = 300) -> str:
    """A hostile file can have a megabyte-long key or value: messages stay one readable line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_config(data: Any, *, base: Path, source: str = "configuration") -> Config:
    if not isinstance(data, dict):
        raise ConfigInvalid(f"{source}: the top level must be a mapping with a `providers:` key",
                            hint="see `shiftover init`")
    data = _interpolate(data, "")
    providers = data.get("providers")
    for p in providers.values() if isinstance(providers, dict) else ():
        if isinstance(p, dict) and isinstance(p.get("url"), str):
            p["url"] = _resolve_sqlite(p["url"], base)
        options = p.get("options") if isinstance(p, dict) else None
        if isinstance(options, dict) and isinstance(options.get("fixtures"), str):  # memory: beside backends.yaml
            options["fixtures"] = str(base / Path(options["fixtures"]).expanduser())
    control = data.get("control")
    if isinstance(control, dict) and isinstance(control.get("url"), str):
        control["url"] = _resolve_sqlite(control["url"], base)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    if not data.get("control"):
        config.control.url = SecretStr(_resolve_sqlite(config.control.url.get_secret_value(), base))
    for name, provider in config.providers.items():
        _validate_options(name, provider, source)
    for path, name in config.services.named():
        if name not in config.providers:
            raise ConfigInvalid(f"{source}: services.{_clip(path)}: {_clip(repr(name))} is not a provider under "
                                "providers", hint=_clip(f"name one of: {', '.join(config.providers)} (or add "
                                                        f"{name!r} under providers)"))
    return config


def _validate_options(name: str, provider: ProviderConfig, source: str) -> None:
    from shiftover.adapters.kinds import adapter_class

    try:
        cls = adapter_class(provider.kind)
    except BackendError:
        return  # a missing driver is reported when the provider is used, not when the file is read
    try:
        cls.Options.model_validate(provider.options)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = f"providers.{name}.options" + ("." + _field_path(err["loc"]) if err["loc"] else "")
        message = f"{source}: {_clip(path)}: {_clip(redact(err['msg']))}"
        raise ConfigInvalid(message, hint=_clip(f"fix {path}")) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    try:
        found = file.is_file()
        raw = file.read_bytes() if found else b""
    except (OSError, ValueError) as exc:  # unreadable, a name with NUL bytes, too long
        raise ConfigInvalid(f"configuration file {str(file)[:300]!r} cannot be read ({type(exc).__name__})",
                            hint="check the path and its permissions") from None
    if not found:
        raise ConfigInvalid(
            f"configuration file {str(file)[:300]!r} not found",
            hint="create one with `shiftover init --template development` or pass --config FILE",
        )
    # A flow's tasks each read the file again (about 30 times per migration, ~3 ms each): the same bytes, under the
    # same values of the variables they name, give the same configuration, so it is parsed once and copied.
    text = raw.decode("utf-8", "replace")
    env = hashlib.blake2b(repr([(m["name"], os.environ.get(m["name"])) for m in _ENV.finditer(text)]).encode())
    key = (str(file.resolve()), hashlib.blake2b(raw).digest(), env.digest())
    config = _PARSED.get(key)
    if config is None:
        data = safe_yaml.load(safe_yaml.decode(raw, str(file)), str(file))
        config = parse_config(data, base=file.resolve().parent, source=str(file))
        config.path = file.resolve()
        if len(_PARSED) >= 32:
            _PARSED.clear()
        _PARSED[key] = config
    return config.model_copy(deep=True)
