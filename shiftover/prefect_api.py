"""Which Prefect API a command talks to, decided before Prefect is imported.

In this order:
1. PREFECT_API_URL, from the environment or from the active profile in PREFECT_HOME/profiles.toml: used as it is.
   It is health-checked first; one that does not answer is BACKEND_018 with the fix, never a traceback.
2. The server that `shiftover serve` started and registered in PREFECT_HOME/shiftover-api.json, when its
   /api/health answers. The command then sets PREFECT_API_URL for itself and its child processes.
3. Otherwise Prefect's temporary server (a uvicorn process that lives as long as the command), started here under
   a spinner and given SHIFTOVER_API_STARTUP_TIMEOUT_S (default 180 s) to answer, whatever Prefect's own
   PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS says. When it does not answer in time: BACKEND_018.

`serve_api()` is the other half: `shiftover serve` starts `prefect server start` when none of 1-2 is there,
registers it, and removes the registration (and stops the server) when it stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shiftover.adapters.errors import OrchestratorUnavailable

REGISTRY_FILE = "shiftover-api.json"
DEFAULT_STARTUP_TIMEOUT_S = 180.0
FIX = ("start one Prefect server and keep it running (`shiftover serve` starts and registers one; or "
       "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api)")


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def startup_timeout_s() -> float:
    """Shiftover's own limit for a server to answer: SHIFTOVER_API_STARTUP_TIMEOUT_S, else 180 s."""
    try:
        return float(os.environ.get("SHIFTOVER_API_STARTUP_TIMEOUT_S") or DEFAULT_STARTUP_TIMEOUT_S)
    except ValueError:
        return DEFAULT_STARTUP_TIMEOUT_S


def answers(api_url: str, timeout_s: float = 3.0) -> bool:
    """True when GET {api_url}/health answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False


def configured_url() -> str | None:
    """PREFECT_API_URL from the environment, else from the active profile of PREFECT_HOME/profiles.toml."""
    if "PREFECT_API_URL" in os.environ:
        return os.environ["PREFECT_API_URL"].strip() or None
    try:
        profiles = tomllib.loads((prefect_home() / "profiles.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value).strip() or None if value else None


@dataclass(frozen=True)
class Registered:
    url: str
    pid: int
    started: str


def registered() -> Registered | None:
    try:
        data = json.loads((prefect_home() / REGISTRY_FILE).read_text(encoding="utf-8"))
        return Registered(str(data["url"]), int(data["pid"]), str(data.get("started", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def register(url: str, pid: int) -> Path:
    path = prefect_home() / REGISTRY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": pid, "started": dt.datetime.now(dt.timezone.utc).isoformat()}),
                   encoding="utf-8")
    tmp.replace(path)
    return path


def unregister(url: str) -> None:
    current = registered()
    if current is not None and current.url == url:
        with contextlib.suppress(OSError):
            (prefect_home() / REGISTRY_FILE).unlink()


def running_api() -> str | None:
    """The API a command should reuse, or None when only a temporary server is left. Raises BACKEND_018 when
    PREFECT_API_URL is set and does not answer."""
    url = configured_url()
    if url:
        if not answers(url):
            raise OrchestratorUnavailable(
                f"the Prefect API at PREFECT_API_URL={url} does not answer",
                hint="start that server, fix PREFECT_API_URL, or unset it to let Shiftover use a running "
                     "`shiftover serve` or a temporary server")
        return url
    reg = registered()
    if reg is not None and answers(reg.url, timeout_s=2.0):
        return reg.url
    return None


def use_prefect_api(status: object | None = None, *, warm: Sequence[str] = ()) -> str:
    """Point this process (and its children) at a Prefect API before Prefect is imported; returns its URL.

    `status` is a rich Console whose spinner shows while a temporary server starts; `warm` names modules imported in a
    thread meanwhile (the flow's own imports overlap the server's start-up)."""
    url = running_api()
    if url:
        os.environ["PREFECT_API_URL"] = url
        return url
    warmers = [threading.Thread(target=_import_quietly, args=(name,), daemon=True) for name in warm]
    for t in warmers:
        t.start()
    timeout = startup_timeout_s()
    spinner = (status.status(f"Starting a temporary Prefect API (up to {timeout:g} s; `shiftover serve` skips "  # type: ignore[attr-defined]
                             "this) …", spinner="dots")
               if status is not None else contextlib.nullcontext())
    with spinner:
        from prefect.server.api.server import SubprocessASGIServer  # the server get_client() would start

        server = SubprocessASGIServer()
        try:
            server.start(timeout=max(1, math.ceil(timeout)))  # 0 would mean Prefect's own
        except Exception as exc:  # noqa: BLE001 - Prefect raises RuntimeError or httpx errors; one line instead
            raise OrchestratorUnavailable(
                f"Prefect's temporary API server did not answer within {timeout:g} s "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'})",
                hint=f"{FIX}, or raise SHIFTOVER_API_STARTUP_TIMEOUT_S") from None
    os.environ["PREFECT_API_URL"] = server.api_url  # child processes (GX worker, Dask) reuse it
    for t in warmers:
        t.join()
    return server.api_url


def _import_quietly(name: str) -> None:
    with contextlib.suppress(Exception):  # the real import in the command reports any error
        importlib.import_module(name)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port")


@contextlib.contextmanager
def serve_api(port: int = 4200, status: object | None = None) -> Iterator[str]:
    """For `shiftover serve`: reuse a running API (as commands do), else start `prefect server start` on 127.0.0.1
    (the preferred port or a free one), wait until it answers, register it for the commands, and stop it and remove
    the registration on exit."""
    url = running_api()
    if url:
        os.environ["PREFECT_API_URL"] = url
        yield url
        return
    port = free_port(port)
    url = f"http://127.0.0.1:{port}/api"
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_UI_API_URL": url, "PREFECT_API_URL": ""}
    log = open(home / "shiftover-api.log", "ab")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        timeout = startup_timeout_s()
        spinner = (status.status(f"Starting a Prefect server on {url} (up to {timeout:g} s) …",  # type: ignore[attr-defined]
                                 spinner="dots") if status is not None else contextlib.nullcontext())
        with spinner:
            deadline = time.monotonic() + timeout
            while not answers(url, timeout_s=2.0):
                if proc.poll() is not None:
                    raise OrchestratorUnavailable(
                        f"`prefect server start` exited with code {proc.returncode}; its log is "
                        f"{home / 'shiftover-api.log'}", hint=FIX)
                if time.monotonic() > deadline:
                    raise OrchestratorUnavailable(f"the Prefect server on {url} did not answer within {timeout:g} s",
                                                  hint=f"{FIX}, or raise SHIFTOVER_API_STARTUP_TIMEOUT_S")
                time.sleep(0.3)
        register(url, proc.pid)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        unregister(url)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
