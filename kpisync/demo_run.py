"""One `kpisync demo` in progress, as each feature's demo stage (metrics.demo, writeback.demo,
kpisync.report.demo) receives it; kept apart from kpisync.demo, which calls those stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulators.org.model import Org
from kpisync.context import AppContext
from kpisync.demo_crms import DemoCrm
from kpisync.sandbox_setup import Mapping


@dataclass(frozen=True)
class DemoRun:
    """One demo in progress: the CRM, its emulator serving `org`, and the store's context."""

    crm: DemoCrm
    emulator: Any
    org: Org
    context: AppContext
    folder: Path
    kept: bool  # the folder outlives the demo (--keep)
    mapping: Mapping  # entity -> score -> the field it is written into
