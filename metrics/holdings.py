"""What the store holds of the inputs some KPIs need, which not every CRM keeps.

A KPI declares the inputs it needs (`Kpi.needs`). When no source in the store holds one of them,
the KPI shows only "no data" with the reason below, for every period, never 0: Vtiger's potentials carry no
line items, its API keeps no stage history (kpisync observes stages while it syncs, which says
nothing of the stages a deal passed before), and its users carry no start date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

from kpisync.connector import OBSERVED_STAGE_BASIS
from kpisync.store.models import DealStageChange, LineItem, User
from metrics.declaration import Kpi, KpiValue
from metrics.periods import Window


@dataclass(frozen=True)
class Input:
    name: str
    reason: str  # why values are "no data" when no source holds it
    held: Callable[[], ColumnElement[bool]]  # EXISTS: some source holds it


def _line_items() -> ColumnElement[bool]:
    li = LineItem.__table__  # type: ignore[attr-defined]
    return exists(select(li.c.id).where(li.c.deleted_at.is_(None)))


def _stage_history() -> ColumnElement[bool]:
    h = DealStageChange.__table__  # type: ignore[attr-defined]
    basis = h.c.raw["basis"].as_string()
    return exists(
        select(h.c.id).where(
            h.c.deleted_at.is_(None), or_(basis.is_(None), basis != OBSERVED_STAGE_BASIS)
        )
    )


def _start_dates() -> ColumnElement[bool]:
    u = User.__table__  # type: ignore[attr-defined]
    return exists(
        select(u.c.id).where(
            u.c.deleted_at.is_(None), or_(u.c.started_on.is_not(None), u.c.created_at.is_not(None))
        )
    )


INPUTS: dict[str, Input] = {
    i.name: i
    for i in (
        Input("line_items", "the CRM holds no line items on deals", _line_items),
        Input(
            "stage_history",
            "the CRM keeps no stage history (the stages a deal passed)",
            _stage_history,
        ),
        Input(
            "start_dates",
            "the CRM holds no start date (hire date or creation) of its users",
            _start_dates,
        ),
    )
}


def missing_inputs(connection: Connection, names: set[str]) -> dict[str, str]:
    """Input name -> reason, for each of `names` no source in the store holds."""
    out = {}
    for name in sorted(names):
        found = INPUTS[name]
        if not connection.execute(select(found.held())).scalar():
            out[name] = found.reason
    return out


def unserved(kpis: list[Kpi], missing: dict[str, str], window: Window) -> dict[str, list[KpiValue]]:
    """KPI name -> its values when it needs a missing input: "no data" with the reason at the
    org grain for every shown period, and nothing else."""
    out: dict[str, list[KpiValue]] = {}
    for kpi in kpis:
        lacking = [missing[n] for n in kpi.needs if n in missing]
        if lacking:
            out[kpi.name] = [
                KpiValue(
                    kpi.name, kind, start, "org", "org", None, None, None, "no data: " + lacking[0]
                )
                for kind in kpi.periods
                for start in window.periods(kind)
            ]
    return out
