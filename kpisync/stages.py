"""The pipeline's later stages, reached through small adapters that import them lazily.

    compute_kpis      metrics.engine.compute_all(engine, metrics.options.metric_config(settings))
    write_back        writeback.runs.run_writeback(engine, settings, source, connector), for
                      sources with a [writeback.<source>] mapping (writeback.options.mapped_sources)
    paused_writeback  the mappings write-back paused (writeback.guard.mapped_pauses), for the ops
                      alerts and `kpisync status`

Either package may be absent: the stage is then skipped, and says why. Their errors are kpisync
errors and propagate to the pipeline, which records them; a write-back run with failed writes is
one (WritesFailed, naming the records and fields).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from sqlalchemy import Engine

from kpisync.config import Settings
from kpisync.connector import Connector

SUCCEEDED, SKIPPED = "succeeded", "skipped"


@dataclass(frozen=True)
class StageOutcome:
    status: str  # succeeded | skipped
    detail: str = ""
    api_calls: int = 0

    def summary(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


def optional_module(name: str) -> ModuleType | None:
    """`name` imported, or None when it (not one of its own imports) is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            return None
        raise


def compute_kpis(engine: Engine, settings: Settings) -> StageOutcome:
    engine_module = optional_module("metrics.engine")
    options = optional_module("metrics.options")
    if engine_module is None or options is None:
        return StageOutcome(SKIPPED, "the KPI engine (metrics) is not installed")
    result = engine_module.compute_all(engine, options.metric_config(settings))
    if result.reused_from is not None:
        return StageOutcome(SUCCEEDED, f"inputs unchanged: the {result.standing} values of "
                                       f"computation {result.reused_from} stand, "
                                       f"{len(result.alerts)} KPI alerts")
    return StageOutcome(SUCCEEDED, f"{result.standing} values, {result.changed} changed, "
                                   f"{len(result.alerts)} KPI alerts")


def write_back(engine: Engine, settings: Settings, source: str, connector: Connector) -> StageOutcome:
    runs = optional_module("writeback.runs")
    options = optional_module("writeback.options")
    if runs is None or options is None:
        return StageOutcome(SKIPPED, "write-back is not installed")
    if source not in options.mapped_sources(settings):
        return StageOutcome(SKIPPED, f"no [writeback.{source}] mapping")
    report = runs.run_writeback(engine, settings, source, connector)
    failure = report.failure_error()
    if failure is not None:  # a run with failed writes is never a succeeded stage
        raise failure
    paused = f", {len(report.paused)} field(s) paused" if report.paused else ""
    return StageOutcome(SUCCEEDED, f"{report.written} written, {report.failed} failed, "
                                   f"{report.conflicts} conflicts{paused}",
                        api_calls=report.api_calls)


def paused_writeback(engine: Engine, settings: Settings, source: str) -> dict[str, str]:
    """'object.field' -> why, for each write-back mapping of `source` that is paused now."""
    guard = optional_module("writeback.guard")
    options = optional_module("writeback.options")
    if guard is None or options is None or source not in options.mapped_sources(settings):
        return {}
    pauses = guard.mapped_pauses(engine, settings, source)
    return {f"{entity}.{name}": reason for (entity, name), reason in sorted(pauses.items())}
