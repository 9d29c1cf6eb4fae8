"""Opening providers by name from the configuration (the kinds and their classes are in adapters/kinds.py)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from shiftover.adapters.errors import BackendError, ProviderNotFound
from shiftover.adapters.kinds import adapter_class as adapter_class  # the one most callers import from here

if TYPE_CHECKING:
    from shiftover.adapters.base import Adapter
    from shiftover.adapters.config import Config, ProviderConfig

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
