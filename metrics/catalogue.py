"""The registry of every KPI of the catalogue (../shared/kpi-catalogue.md), family by family."""

from __future__ import annotations

from dataclasses import replace

from metrics import customers, pipeline, quota, surveys, timing
from metrics.declaration import Registry

REGISTRY = Registry()
for _family in (pipeline, timing, quota, customers, surveys):
    REGISTRY.add(
        *(replace(kpi, family=_family.__name__.rsplit(".", 1)[-1]) for kpi in _family.KPIS)
    )
