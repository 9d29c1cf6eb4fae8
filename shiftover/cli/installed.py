"""What Shiftover has installed in each provider's database, and the command that removes it (`shiftover status`)."""

from __future__ import annotations

from dataclasses import dataclass

from shiftover.adapters.base import Adapter, Installed
from shiftover.adapters.config import Config
from shiftover.adapters.errors import BackendError
from shiftover.adapters.registry import adapter_class, open_adapter
from shiftover.control.store import Run


@dataclass(frozen=True)
class InstalledRow:
    provider: str
    item: Installed | None  # None: the provider could not be asked (see `remove`)
    remove: str


def removal(item: Installed, provider: str, active: str | None, runs: list[Run]) -> str:
    """The command that removes `item`: an old primary's fence and capture end with `release`, a freeze left by an
    interrupted run with `unfreeze`; the capture kept on the active provider for rollback ends with the release of the
    old primary it was migrated from."""
    if item.group == "realtime":
        return (f"backend.realtime.uninstall({item.collection!r}) in Python" if item.collection else
                "goes with the last realtime trigger")
    if item.group == "canary":
        return "set health.canary to false, then drop the table"
    if provider != active:
        return f"shiftover release {provider}"
    if item.group == "freeze":
        return f"shiftover unfreeze {provider}"
    old = next((r.source for r in runs if r.target == provider and r.strategy == "blue_green"
                and r.status == "succeeded" and r.source), None)
    return (f"shiftover release {old}" if old else
            "re-run the migration that started it (it removes its capture when it ends)")


def installed_rows(config: Config, active: str | None, runs: list[Run]) -> list[InstalledRow]:
    """One row per installed object, for every provider whose engine Shiftover installs objects in."""
    rows: list[InstalledRow] = []
    for name, provider in config.providers.items():
        try:
            if adapter_class(provider.kind).installed is Adapter.installed:
                continue
            with open_adapter(config, name) as adapter:
                items = adapter.installed()
        except BackendError as exc:
            rows.append(InstalledRow(name, None, f"could not look: {str(exc).splitlines()[0]}"))
            continue
        rows.extend(InstalledRow(name, i, removal(i, name, active, runs)) for i in items)
    return rows
