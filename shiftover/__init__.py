"""Shiftover: keep an application's backend healthy and movable.

The public import an application uses::

    from shiftover import Backend, BackendError

    backend = Backend.from_config("backends.yaml")       # the router: reads and writes go to the active provider
    backend.db.upsert("customers", [{"id": 1, "email": "ada@example.com"}])
    backend.db.find("customers", [("email", "ilike", "%@example.com")], order_by=[("id", "asc")], limit=10)
    backend.status(), backend.metrics().prometheus()

The rest of the package (installed as one namespace):

- shiftover.adapters      one module per provider behind one interface; config models; canonical records; errors
- shiftover.tasks         small retryable Prefect tasks over adapters
- shiftover.flows         thin Prefect flows (migrate, failover, sync, health_sweep, full_test_suite, ...)
- shiftover.expectations  Great Expectations suites
- shiftover.deployments   what `shiftover serve` serves; prefect.yaml for workers
- shiftover.control       the control store: pointer, freezes, runs, leases, sync states
- shiftover.cli           the `shiftover` command;  shiftover.service  the `shiftover serve` process
- shiftover.codebase      the codebase analysis library (parsers, SDK rules, plan)

Importing `shiftover` imports nothing heavy: the names below load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {  # name -> module that defines it
    "Backend": "shiftover.adapters.router",
    "View": "shiftover.adapters.router",
    "Config": "shiftover.adapters.config",
    "load_config": "shiftover.adapters.config",
    "parse_config": "shiftover.adapters.config",
    "Filter": "shiftover.adapters.base",
    "Record": "shiftover.adapters.base",
    "Key": "shiftover.adapters.base",
    "open_adapter": "shiftover.adapters.registry",
    "BackendError": "shiftover.adapters.errors",
    "TransientError": "shiftover.adapters.errors",
    "PermanentError": "shiftover.adapters.errors",
    "WriteFrozen": "shiftover.adapters.errors",
    "ControlStore": "shiftover.control.store",
}

__all__ = ["Backend", "BackendError", "Config", "ControlStore", "Filter", "Key", "PermanentError", "Record",
           "TransientError", "View", "WriteFrozen", "__version__", "load_config", "open_adapter", "parse_config"]

if TYPE_CHECKING:
    from shiftover.adapters.base import Filter, Key, Record
    from shiftover.adapters.config import Config, load_config, parse_config
    from shiftover.adapters.errors import BackendError, PermanentError, TransientError, WriteFrozen
    from shiftover.adapters.registry import open_adapter
    from shiftover.adapters.router import Backend, View
    from shiftover.control.store import ControlStore


assert sorted(__all__) == sorted(["__version__", *_PUBLIC])  # one list for the linter, one map for the loader


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'shiftover' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
