"""Provider kinds and the adapter classes behind them: one line per kind. backends.yaml's `kind` is checked against
this table; a kind's module (and its driver) is imported only when the kind is used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shiftover.adapters.errors import ConfigInvalid, DriverMissing

if TYPE_CHECKING:
    from shiftover.adapters.base import Adapter

_ADAPTERS: dict[str, str] = {
    "postgresql": "shiftover.adapters.postgres.adapter:PostgresAdapter",
    "sqlite": "shiftover.adapters.sqlite.adapter:SqliteAdapter",
    "memory": "shiftover.adapters.memory:MemoryAdapter",
    "supabase": "shiftover.adapters.supabase.adapter:SupabaseAdapter",
    "firestore": "shiftover.adapters.firestore.adapter:FirestoreAdapter",
    "mongodb": "shiftover.adapters.mongo.adapter:MongoAdapter",
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
