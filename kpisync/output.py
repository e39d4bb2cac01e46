"""Where commands print: Rich on stdout, at the terminal's width on a terminal and, anywhere else
(a file, a pipe, cron's mail), wide enough that no cell is cut: Rich would otherwise assume 80
columns and shorten what an admin copies (API names, errors). COLUMNS, when set, still wins."""

from __future__ import annotations

import os
import sys

from rich.console import Console

UNCUT_WIDTH = 100_000  # tables take their content's width; nothing is padded to this


def stdout_console() -> Console:
    return Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS")
                   else UNCUT_WIDTH)


def stderr_console() -> Console:
    return Console(stderr=True, soft_wrap=True,
                   width=None if sys.stderr.isatty() or os.environ.get("COLUMNS")
                   else UNCUT_WIDTH)
