"""Where commands print: Rich on stdout, at the terminal's width on a terminal and, anywhere else
(a file, a pipe, cron's mail), wide enough that no cell is cut: Rich would otherwise assume 80
columns and shorten what an admin copies (API names, errors). COLUMNS, when set, still wins."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from rich.align import AlignMethod
from rich.console import Console
from rich.rule import Rule
from rich.style import Style
from rich.text import Text

UNCUT_WIDTH = 100_000  # tables take their content's width; nothing is padded to this
RULE_WIDTH = 100  # a rule off a terminal: as wide as a page, not as the uncut width


class UncutConsole(Console):
    """A console whose rules stay a page wide when its width is the uncut one."""

    def rule(
        self,
        title: str | Text = "",
        *,
        characters: str = "─",
        style: str | Style = "rule.line",
        align: AlignMethod = "center",
    ) -> None:
        rule = Rule(title, characters=characters, style=style, align=align)
        self.print(rule, width=min(self.width, RULE_WIDTH) if self.width == UNCUT_WIDTH else None)


class Stdout(UncutConsole):
    """A reader that had enough (`kpisync kpis | head -1`) is not a failure: exit 0, as the
    machine forms do (Rich's own choice is 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


def stdout_console() -> Console:
    return Stdout(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else UNCUT_WIDTH)


def stderr_console() -> Console:
    return UncutConsole(
        stderr=True,
        soft_wrap=True,
        width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else UNCUT_WIDTH,
    )


@dataclass
class RunMode:
    """The global options of this invocation (--debug, --log-json), kept here rather than in
    kpisync.cli, which `python -m kpisync.cli` loads twice (as __main__ and as itself)."""

    debug: bool = False
    log_json: bool = False


MODE = RunMode()
