"""What the `shiftover` command lets reach the terminal: one line per problem, never a traceback.

- Shiftover's and Prefect's log records still show on the console, each as one line; a record that carries an
  exception gets its type and first line plus the log file's path instead of the traceback.
- Every other library's records (SQLAlchemy's pool, drivers, asyncio, warnings) go to the log file only.
- The log file gets everything from WARNING up with full tracebacks, secrets redacted. It is
  `$SHIFTOVER_LOG_DIR/shiftover.log`, by default `~/.shiftover/logs/shiftover.log` (created on its first record,
  rotated at 5 MB, 3 kept).
- Exceptions that escape a thread or a finaliser are logged the same way instead of printed.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

from shiftover.adapters.errors import BackendError, redact

OWN = ("shiftover", "prefect")
_installed: dict[str, Path] = {}


def log_dir() -> Path:
    configured = os.environ.get("SHIFTOVER_LOG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".shiftover" / "logs"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, secrets redacted, clipped."""
    text = str(exc).strip().splitlines()
    first = redact(text[0]) if text else ""
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _OneLine(logging.Formatter):
    """Wraps a console handler's formatter: the record's exception becomes a clause, newlines become ' | '."""

    def __init__(self, inner: logging.Formatter | None, path: Path) -> None:
        super().__init__()
        self.inner, self.path = inner or logging.Formatter("%(levelname)s %(name)s: %(message)s"), path

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)
        message = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BackendError):  # its message already says what went wrong and what to do
            message = message if exc.code in message else f"{message} — {exc}"
        elif exc is not None:
            message = f"{message} — {one_line(exc)} (details in {self.path})"
        elif record.exc_text or record.stack_info:
            message = f"{message} (details in {self.path})"
        copy.msg, copy.args = " | ".join(line for line in message.splitlines() if line.strip()), None
        copy.exc_info, copy.exc_text, copy.stack_info = None, None, None
        return redact(self.inner.format(copy))


class _OwnOnly(logging.Filter):
    """On the console: Shiftover's and Prefect's records; libraries' go to the file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in OWN:
            return False
        # Prefect's note on its temporary API server (three lines with a docs link): the CLI's spinner says it
        return not (isinstance(record.msg, str) and record.msg.startswith("Starting temporary server on "))


class RunLines(logging.Formatter):
    """Prefect's console layout (flow and task runs by name) without importing Prefect, which takes seconds."""

    FLOW = "%(asctime)s.%(msecs)03d | %(levelname)-7s | Flow run %(flow_run_name)r - %(message)s"
    TASK = "%(asctime)s.%(msecs)03d | %(levelname)-7s | Task run %(task_run_name)r - %(message)s"
    PLAIN = "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s"

    def __init__(self) -> None:
        super().__init__(self.PLAIN, "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        fmt = (self.FLOW if record.name == "prefect.flow_runs" and hasattr(record, "flow_run_name") else
               self.TASK if record.name == "prefect.task_runs" and hasattr(record, "task_run_name") else self.PLAIN)
        return fmt % record.__dict__


class ConsoleLines(logging.StreamHandler):
    """The CLI's console handler. Its name does not start with `_`, so Prefect's logging set-up keeps it on the
    root logger instead of replacing it with its own console handler. Given the CLI's rich Console (the one its
    progress bars and spinners draw on), it prints each line through it: above a live bar or spinner, never into it."""

    console: Any = None
    _STYLES: ClassVar[dict[int, str]] = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "bold red"}

    def emit(self, record: logging.LogRecord) -> None:
        if self.console is None:
            super().emit(record)
            return
        try:
            from rich.text import Text

            line = Text(self.format(record), style=self._STYLES.get(record.levelno, ""))
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)
        except Exception:  # noqa: BLE001 - logging's own contract: report through handleError, never raise
            self.handleError(record)


def _file_handler() -> tuple[logging.Handler, Path]:
    handler: logging.Handler
    for directory in (log_dir(), Path(tempfile.gettempdir()) / "shiftover-logs"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / "shiftover.log"
            if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                continue
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3,
                                                           encoding="utf-8", delay=True)  # created on first record
            break
        except OSError:
            continue
    else:
        handler, path = logging.NullHandler(), Path(os.devnull)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_Redacting("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.set_name("shiftover-file")
    return handler, path


def _console_handlers() -> list[tuple[logging.Handler, bool]]:
    """(handler, is on the root logger) for every handler writing to the terminal."""
    root = logging.getLogger()
    loggers = [root] + [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    found: list[tuple[logging.Handler, bool]] = []
    for lg in loggers:
        for h in lg.handlers:
            stream = getattr(h, "stream", None)
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and (
                    stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__) or hasattr(h, "console")):
                found.append((h, lg is root))
    return found


def install(console: Any = None) -> Path:
    """Route logging as the module docstring says; idempotent (call it again after Prefect is imported, to tame
    the handlers Prefect added). `console`: the rich Console the terminal lines go through (the CLI's stderr one,
    shared with its progress bars and spinners). Returns the log file's path."""
    if "path" in _installed:
        _tame_consoles(_installed["path"], console)
        return _installed["path"]
    handler, path = _file_handler()
    root = logging.getLogger()
    root.handlers.insert(0, handler)  # before the console handlers, so it formats the record untouched
    if not any(isinstance(h, ConsoleLines) for h in root.handlers):
        lines = ConsoleLines(sys.stderr)
        lines.setFormatter(RunLines())
        root.addHandler(lines)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _tame_consoles(path, console)
    unraisable = logging.getLogger("py.unraisable")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        logging.getLogger("shiftover.thread").error(
            "thread %s failed", getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def unraisable_hook(args: sys.UnraisableHookArgs) -> None:
        if args.exc_value is not None:
            unraisable.warning("%s: %r", args.err_msg or "exception ignored", args.object,
                               exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook
    _installed["path"] = path
    return path


def _tame_consoles(path: Path, console: Any = None) -> None:
    for h, on_root in _console_handlers():
        if console is not None and isinstance(h, ConsoleLines):
            h.console = console
        if not isinstance(h.formatter, _OneLine):
            h.setFormatter(_OneLine(h.formatter, path))
        if on_root and not any(isinstance(f, _OwnOnly) for f in h.filters):
            h.addFilter(_OwnOnly())


def log_unexpected(exc: BaseException) -> Path:
    """Write `exc` with its traceback to the log file (not the console); returns the file's path."""
    path = install()
    record = logging.getLogger("shiftover.cli").makeRecord(
        "shiftover.cli", logging.ERROR, __file__, 0, "unexpected error: %s", (one_line(exc),),
        (type(exc), exc, exc.__traceback__))
    for h in logging.getLogger().handlers:
        if h.get_name() == "shiftover-file":
            h.handle(record)
    return path
