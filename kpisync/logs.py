"""Logging: Rich on a terminal, one plain line per record elsewhere (a journal, a container's log,
a pipe), or JSON lines for machines; secrets masked on every handler."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.logging import RichHandler

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
