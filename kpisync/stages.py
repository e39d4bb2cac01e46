"""The pipeline's later stages: small adapters over the KPI engine and write-back.

    compute_kpis      metrics.compute_all(engine, metrics.metric_config(settings))
    write_back        writeback.run_writeback(engine, settings, source, connector), for
                      sources with a [writeback.<source>] mapping (writeback.mapped_sources)
    writeback_control write-back held back by the admin (writeback.control_summary)
    paused_writeback  the mappings write-back paused (writeback.mapped_pauses), for the ops
                      alerts and `kpisync status`

Both packages ship in the same distribution as the pipeline, so they are imported like any module
below it (docs/decisions/import-layers.md). Their errors are kpisync errors and propagate to the
pipeline, which records them; a write-back run with failed writes is one (WritesFailed, naming
the records and fields).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from kpisync.config import Settings
from kpisync.connector import Connector
from metrics import compute_all, metric_config
from writeback import control_summary, mapped_pauses, mapped_sources, run_writeback

SUCCEEDED, SKIPPED = "succeeded", "skipped"


@dataclass(frozen=True)
class StageOutcome:
    status: str  # succeeded | skipped
    detail: str = ""
    api_calls: int = 0

    def summary(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


def compute_kpis(engine: Engine, settings: Settings) -> StageOutcome:
    result = compute_all(engine, metric_config(settings))
    if result.reused_from is not None:
        return StageOutcome(
            SUCCEEDED,
            f"inputs unchanged: the {result.standing} values of "
            f"computation {result.reused_from} stand, "
            f"{len(result.alerts)} KPI alerts",
        )
    return StageOutcome(
        SUCCEEDED,
        f"{result.standing} values, {result.changed} changed, {len(result.alerts)} KPI alerts",
    )


def write_back(
    engine: Engine, settings: Settings, source: str, connector: Connector
) -> StageOutcome:
    if source not in mapped_sources(settings):
        return StageOutcome(SKIPPED, f"no [writeback.{source}] mapping")
    report = run_writeback(engine, settings, source, connector)
    if report.status == "off":
        return StageOutcome(SKIPPED, f'write-back is off (writeback.{source}.mode = "off")')
    if report.status == "planned":
        return StageOutcome(
            SUCCEEDED,
            f"plan {report.run_id} of {report.planned} change(s) "
            f"awaits approval: kpisync writeback approve {report.run_id}",
            api_calls=report.api_calls,
        )
    failure = report.failure_error()
    if failure is not None:  # a run with failed writes is never a succeeded stage
        raise failure
    paused = f", {len(report.paused)} field(s) paused" if report.paused else ""
    return StageOutcome(
        SUCCEEDED,
        f"{report.written} written, {report.failed} failed, {report.conflicts} conflicts{paused}",
        api_calls=report.api_calls,
    )


def writeback_control(engine: Engine, settings: Settings, source: str) -> str | None:
    """Write-back held back by the admin: mode off, a plan awaiting approval, reverted fields."""
    return control_summary(engine, settings, source)


def paused_writeback(engine: Engine, settings: Settings, source: str) -> dict[str, str]:
    """'object.field' -> why, for each write-back mapping of `source` that is paused now."""
    if source not in mapped_sources(settings):
        return {}
    pauses = mapped_pauses(engine, settings, source)
    return {f"{entity}.{name}": reason for (entity, name), reason in sorted(pauses.items())}
