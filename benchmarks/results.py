"""Where a benchmark keeps what it printed: `--save` writes benchmarks/out/<what it measured>.txt.

A file is named by what it measures (CRM or engine, size, store, latency), never by when it ran,
so a new run replaces the last one's figures; older figures live in git history. The first line
says the command and the commit it ran at. docs/figures.md quotes these files.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

OUT = Path(__file__).resolve().parent / "out"


def size(count: int) -> str:
    """10000 -> "10k", 1000000 -> "1m", 300 -> "300"."""
    for unit, word in ((1_000_000, "m"), (1_000, "k")):
        if count >= unit and count % unit == 0:
            return f"{count // unit}{word}"
    return str(count)


def latency(seconds: float, usual: float = 0.02) -> str:
    """ "" at the usual 20 ms a call, else e.g. "200ms"."""
    return "" if seconds == usual else f"{seconds * 1000:g}ms"


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=OUT.parent,
        check=False,
    )
    return done.stdout.strip() or "an unknown commit"


def keep_output(save: bool, *what: str) -> None:
    """From now on print as usual and, if `save`, copy it to benchmarks/out/<what, joined by _>.txt.

    `what` says what is measured: ("salesforce", "100k", "bulk", "sqlite", "200ms"); empty parts
    are left out.
    """
    if not save:
        return
    name = "_".join(part for part in what if part)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.txt"
    file = path.open("w", encoding="utf-8")
    file.write(
        f"# python {' '.join(sys.argv)} at {_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
    )
    stdout = sys.stdout
    sys.stdout = _Tee(stdout, file)  # type: ignore[assignment]

    def close() -> None:
        sys.stdout = stdout
        file.close()
        print(f"(kept in benchmarks/out/{path.name})")

    atexit.register(close)
