"""The application's storage service: one `FileStore` interface, chosen per provider by `file_store(config, name)`.

Which store a provider gets:
- `options.files` set (any kind): an fsspec filesystem (FsspecFileStore) — local files, memory, S3 ...;
- else by kind, from `_STORES`: supabase → Supabase Storage (options.api_url, options.service_role_key),
  firestore → Firebase Storage (options.storage);
- else a memory provider keeps its files in fsspec's memory filesystem (mock mode);
- else ConfigInvalid, naming options.files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shiftover.adapters.base import FilesOptions
from shiftover.adapters.errors import ConfigInvalid
from shiftover.adapters.storage_api.base import FileInfo, FileStore

if TYPE_CHECKING:
    from shiftover.adapters.config import Config

__all__ = ["FileInfo", "FileStore", "file_store"]

# kind -> the store over that kind's own storage service (module:class; imported when used)
_STORES: dict[str, str] = {
    "supabase": "shiftover.adapters.storage_api.supabase_store:SupabaseFileStore",
    "firestore": "shiftover.adapters.storage_api.firebase_store:FirebaseFileStore",
}
_STORAGE_HINTS: dict[str, str] = {  # what such a provider needs for its own storage
    "supabase": "add options.api_url and options.service_role_key (Project Settings → API), or options.files",
    "firestore": "add options.storage.buckets (and emulator_host or credentials_file), or options.files",
}


def file_store(config: Config, name: str) -> FileStore:
    """The storage service of the provider called `name`. Raises ProviderNotFound, ConfigInvalid."""
    from shiftover.adapters.registry import open_adapter, provider_config
    from shiftover.adapters.storage_api.fsspec_store import FsspecFileStore

    provider = provider_config(config, name)
    if provider.options.get("files"):  # validated with the provider's options by load_config
        files = FilesOptions.model_validate(provider.options["files"])
        return FsspecFileStore(name, files.url, files.storage_options)
    if provider.kind in _STORES:
        module, _, cls = _STORES[provider.kind].partition(":")
        adapter = open_adapter(config, name)
        if not adapter.capabilities.storage:
            adapter.close()
            raise ConfigInvalid(f"provider {name!r} has no file storage configured",
                                hint=_STORAGE_HINTS[provider.kind], provider=name)
        return getattr(importlib.import_module(module), cls)(adapter)
    if provider.kind == "memory":
        return FsspecFileStore(name, f"memory://shiftover-files/{name}")
    raise ConfigInvalid(f"provider {name!r} ({provider.kind}) has no file storage of its own",
                        hint="add options.files.url: an fsspec URL such as file:///var/data/files or s3://bucket/files",
                        provider=name)

