"""`kpisync sandbox serve` as a child process for the tests: started, waited on until it says
where it listens, stopped with SIGTERM and waited on until it says its records are saved."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self

LISTENING = re.compile(r"sandbox at (https?://127\.0\.0\.1:(\d+))")


def kpisync(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


class Sandbox:
    """One `kpisync sandbox serve` process; `url` and `port` once it listens."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kpisync.cli", "sandbox", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.output: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:  # blocks until the server says it listens, or exits
            self.output.append(line)
            found = LISTENING.search(line)
            if found:
                self.url, self.port = found[1], int(found[2])
                break
        else:
            raise AssertionError("the sandbox never listened:\n" + "".join(self.output))

    def stop(self) -> str:
        """SIGTERM, then everything it printed; it must exit 0 having saved its records."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        self.output.append(self.process.stdout.read())  # to its end: the process has exited
        self.process.wait()
        text = "".join(self.output)
        assert self.process.returncode == 0, text
        return text

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
