"""What the CLI's command modules share: the consoles, the --config option, and the calls around a flow run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shiftover.cli import logs as cli_logging

if TYPE_CHECKING:
    from shiftover.adapters.config import Config

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="backends.yaml to read")]


def Markdown(text: str) -> Any:  # noqa: N802 - rich's class, imported when printed
    from rich.markdown import Markdown as RichMarkdown

    return RichMarkdown(text)


def short_run() -> Any:
    """Around a flow run of a few seconds in this process: no heartbeat thread. Prefect's stops only at its next
    1 s tick, which added 0.5-1 s to every such command; heartbeats serve runs long enough to crash unseen."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def prefect_api(*warm: str) -> str:
    """Reuse a running Prefect API, else start the temporary one with a spinner (prefect_api.py). Call it before
    importing a flow; `warm` modules are imported while a temporary server starts."""
    from shiftover.prefect_api import use_prefect_api

    return use_prefect_api(err, warm=warm)


def quiet_backend_tracebacks() -> None:
    """Call after Prefect is imported: its console handlers print one line per record, never a traceback."""
    cli_logging.install(err)


def known_providers(cfg: Config, *names: str | None) -> None:
    """BACKEND_001, with the configured names, before any flow (or Prefect) starts when a name is not in the file."""
    from shiftover.adapters.registry import provider_config

    for name in names:
        if name is not None:
            provider_config(cfg, name)
