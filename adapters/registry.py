"""Provider kinds and the adapter classes behind them; drivers are imported only when a kind is used."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from adapters.errors import BackendError, ConfigInvalid, DriverMissing, ProviderNotFound

if TYPE_CHECKING:
    from adapters.base import Adapter
    from adapters.config import Config, ProviderConfig

_ADAPTERS: dict[str, str] = {
    "postgresql": "adapters.postgres:PostgresAdapter",
    "sqlite": "adapters.sqlite:SqliteAdapter",
    "memory": "adapters.memory:MemoryAdapter",
    "supabase": "adapters.supabase:SupabaseAdapter",
    "firestore": "adapters.firestore:FirestoreAdapter",
    "mongodb": "adapters.mongo:MongoAdapter",
}

_INSTALL_HINTS: dict[str, str] = {
    "psycopg": "pip install 'psycopg[binary]'",
    "firebase_admin": "pip install firebase-admin",
    "pymongo": "pip install pymongo",
    "supabase": "pip install supabase",
}


def kinds() -> list[str]:
    return sorted(_ADAPTERS)


def adapter_class(kind: str) -> type[Adapter]:
    try:
        target = _ADAPTERS[kind]
    except KeyError:
        raise ConfigInvalid(
            f"unknown provider kind {kind!r}", hint=f"use one of: {', '.join(kinds())}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        hint = _INSTALL_HINTS.get(root, f"install the Python package {root!r}")
        raise DriverMissing(f"the {kind} driver is not installed", hint=hint) from None
    return getattr(module, class_name)


def open_adapter(config: Config, name: str) -> Adapter:
    """Open the provider called `name` in the configuration. Raises ProviderNotFound for an unknown name."""
    provider = provider_config(config, name)
    cls = adapter_class(provider.kind)
    url = provider.url.get_secret_value() if provider.url is not None else None
    return cls(name, url, cls.Options.model_validate(provider.options))


def preload(kinds: Iterable[str]) -> None:
    """Import the adapters of these kinds and their drivers now (a command that is about to use them runs this while
    it waits for something else, such as Prefect's API starting). Problems are left for the adapter's own use to
    report, with its BACKEND_ code."""
    for kind in kinds:
        try:
            for module in adapter_class(kind).driver_modules:
                importlib.import_module(module)
        except (BackendError, ImportError):
            continue


def provider_config(config: Config, name: str) -> ProviderConfig:
    try:
        return config.providers[name]
    except KeyError:
        known = ", ".join(sorted(config.providers)) or "none"
        raise ProviderNotFound(
            f"no provider named {name!r} in the configuration",
            hint=f"configured providers: {known}; add it under `providers:` in backends.yaml",
        ) from None
