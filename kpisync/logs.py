"""Logging: Rich on a terminal, one plain line per record elsewhere (a journal, a container's log,
a pipe), or JSON lines for machines; secrets masked on every handler.

Under --log-json nothing else reaches stderr as plain text: an uncaught exception (of the main
thread or another) is logged as a record, and `JsonUsageErrors`, the CLI's command group, writes a
usage error (an unknown command or option, a missing or bad argument) as one JSON line where Typer
would draw its box.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rich.logging import RichHandler

# Typer carries its own copy of Click from 0.29 on and does not re-export its exception base.
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from kpisync.secrets import MaskingFilter, mask

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per line; fields given with `extra=` are kept as fields (masked)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = mask(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainLines(logging.Formatter):
    """`2026-12-07T12:53:05Z WARNING kpisync.pipeline: message`: one line per record (a
    traceback, with --debug, follows on its own lines), whatever the width of the log."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def formatMessage(self, record: logging.LogRecord) -> str:
        # a library's message may span lines (a database error and its advice): join them
        return " ".join(line.strip() for line in super().formatMessage(record).splitlines())

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class Repeats(logging.Filter):
    """Lets one record of each message through per `every` seconds: APScheduler logs its job
    store's error every 10 s for as long as the store is down, which would fill a journal."""

    def __init__(self, messages: tuple[str, ...], every: float = 300.0) -> None:
        super().__init__()
        self.messages, self.every = messages, every
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in self.messages:
            return True
        now = time.monotonic()
        if now - self.last.get(record.msg, -self.every) < self.every:
            return False
        self.last[record.msg] = now
        record.msg = f"{record.msg} (repeats are logged once every {self.every:.0f} s)"
        return True


JOB_STORE_ERROR = "Error getting due jobs from job store %r: %s"  # APScheduler's own words


def setup_logging(*, level: str = "INFO", json_lines: bool = False) -> None:
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    elif sys.stderr.isatty():
        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainLines())
    handler.addFilter(MaskingFilter())
    if json_lines:  # Python would print an uncaught exception as plain text
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a record too (JSON under --log-json)
    for noisy in ("urllib3", "httpx", "httpcore", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scheduler = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, Repeats) for f in scheduler.filters):
        scheduler.addFilter(Repeats((JOB_STORE_ERROR,)))


@contextmanager
def muted(name: str) -> Iterator[None]:
    """Records of logger `name` below ERROR are dropped inside the block (the demo prints them
    its own way)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("kpisync").critical(
        "uncaught %s: %s", kind.__name__, error, exc_info=(kind, error, trace)
    )


def _log_uncaught_in_thread(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:
        return
    name = hook.thread.name if hook.thread is not None else "?"
    error = hook.exc_value if hook.exc_value is not None else hook.exc_type()
    logging.getLogger("kpisync").critical(
        "uncaught %s in thread %s: %s",
        hook.exc_type.__name__,
        name,
        error,
        exc_info=(hook.exc_type, error, hook.exc_traceback),
    )


# --- usage errors under --log-json --------------------------------------------------------------
LOG_JSON = "--log-json"


def json_record(level: str, message: str, **fields: Any) -> str:
    """One line as --log-json writes a CLI record (the fields of JsonLines)."""
    entry = {
        "time": datetime.now(UTC).isoformat(),
        "level": level,
        "logger": "kpisync.cli",
        "message": message,
        **fields,
    }
    return json.dumps(entry, ensure_ascii=False, default=str)


def print_json_record(message: str, level: str = "info") -> None:
    """A command's message for stderr as a JSON record (under --log-json, instead of plain text)."""
    print(json_record(level, mask(message)), file=sys.stderr, flush=True)


class JsonUsageErrors(TyperGroup):
    """The kpisync command group: under --log-json (given anywhere on the command line, misplaced
    after the command too) a usage error is one JSON line, exit code 2 as without it."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        options = args[: args.index("--")] if "--" in args else args
        as_json = LOG_JSON in options  # before parsing, which consumes `args`
        with usage_errors_as_json(as_json):
            context = super().make_context(info_name, args, parent=parent, **extra)
        context.meta[LOG_JSON] = as_json
        return context

    def invoke(self, ctx: Any) -> Any:
        with usage_errors_as_json(bool(ctx.meta.get(LOG_JSON))):
            return super().invoke(ctx)


@contextmanager
def usage_errors_as_json(on: bool) -> Iterator[None]:
    try:
        yield
    except ClickException as error:
        if not on:
            raise
        print(usage_error_line(error), file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None


def usage_error_line(error: ClickException) -> str:
    context = getattr(error, "ctx", None)
    path = context.command_path if context is not None else "kpisync"
    if type(error).__name__ == "NoArgsIsHelpError":  # its message is the whole help
        message = f"'{path}' needs a command"
    else:
        message = " ".join(error.format_message().split())
    fix = f"see '{path} --help'"
    option = getattr(error, "option_name", None)
    if context is not None and context.parent is not None and option in global_options(context):
        program = context.find_root().info_name
        fix = (
            f"{option} is an option of kpisync itself: put it before the command "
            f"('{program} {option} {context.info_name} …')"
        )
    return json_record("error", mask(message), fix=fix, exit_code=error.exit_code)


def global_options(context: Any) -> set[str]:
    root = context.find_root().command
    return {
        name
        for param in root.params
        for name in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
    }
