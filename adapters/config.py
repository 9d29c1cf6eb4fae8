"""backends.yaml as typed models. `load_config(path)` is the only way in; there is no global settings object.

Secrets (URLs, keys) are SecretStr and `${ENV_VAR}` / `${ENV_VAR:-default}` are substituted before validation. Every
problem with the file becomes one ConfigInvalid (BACKEND_002) that names the field path and says what to do.
Relative SQLite paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from adapters.base import CanonicalType
from adapters.errors import BackendError, ConfigInvalid, redact

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
        from adapters.registry import kinds

        if kind not in kinds():
            raise ValueError(f"unknown provider kind {kind!r}; use one of: {', '.join(kinds())}")
        return kind

    def display_url(self) -> str:
        return redact(self.url.get_secret_value()) if self.url is not None else "-"


class ControlConfig(_Strict):
    url: SecretStr = SecretStr("sqlite:///data/control.db")


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


class MigrationDefaults(_Strict):
    strategy: Literal["immediate", "gradual", "blue_green"] = "immediate"
    batch_size: int = Field(5000, ge=1, le=100_000)
    chunk_rows: int = Field(50_000, ge=1)
    workers: int = Field(2, ge=1, le=64)
    freeze_wait_s: float = Field(5.0, ge=0, description="how long router writes wait on a freeze before failing")
    mappings: dict[str, CollectionMapping] = Field(default_factory=dict, description="per collection: nested fields "
                                                   "to flatten into columns, column names and types")
    sample_size: int = Field(200, ge=1, description="source records read to infer the types of flattened fields")


class Config(_Strict):
    providers: dict[str, ProviderConfig]
    control: ControlConfig = Field(default_factory=ControlConfig)
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    failover: FailoverPolicy = Field(default_factory=FailoverPolicy)
    migration: MigrationDefaults = Field(default_factory=MigrationDefaults)
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
    return ConfigInvalid(f"{source}: {path}: {redact(msg)}{more}", hint=hint)


def parse_config(data: Any, *, base: Path, source: str = "configuration") -> Config:
    if not isinstance(data, dict):
        raise ConfigInvalid(f"{source}: the top level must be a mapping with a `providers:` key", hint="see `shiftover init`")
    data = _interpolate(data, "")
    for p in (data.get("providers") or {}).values():
        if isinstance(p, dict) and isinstance(p.get("url"), str):
            p["url"] = _resolve_sqlite(p["url"], base)
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
    return config


def _validate_options(name: str, provider: ProviderConfig, source: str) -> None:
    from adapters.registry import adapter_class

    try:
        cls = adapter_class(provider.kind)
    except BackendError:
        return  # a missing driver is reported when the provider is used, not when the file is read
    try:
        cls.Options.model_validate(provider.options)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = f"providers.{name}.options" + ("." + _field_path(err["loc"]) if err["loc"] else "")
        raise ConfigInvalid(f"{source}: {path}: {err['msg']}", hint=f"fix {path}") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    if not file.is_file():
        raise ConfigInvalid(
            f"configuration file {str(file)!r} not found",
            hint="create one with `shiftover init --template development` or pass --config FILE",
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigInvalid(f"{file}: not valid YAML{where}", hint="check indentation and quoting") from None
    config = parse_config(data, base=file.resolve().parent, source=str(file))
    config.path = file.resolve()
    return config
