"""Peak resident memory of this process during a sync, sampled after every committed page.

Shared by the sync benchmarks (run as scripts: `python benchmarks/<name>.py`, which puts this
folder on the import path). Sampling /proc/self/statm costs microseconds a page; tracemalloc,
which the first benchmarks used, doubled the local time they measured.
"""

from __future__ import annotations

import os


def resident_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakResident:
    """`sample` after each page; `peak` the highest resident size seen, `growth` over the start."""

    def __init__(self) -> None:
        self.baseline = self.peak = resident_bytes()

    def sample(self, _page: object = None) -> None:
        self.peak = max(self.peak, resident_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
