"""How a KPI and its values read to people: the catalogue's title, and a value in its unit."""

from __future__ import annotations

from kpisync.formats import show_value
from metrics.catalogue import REGISTRY


def kpi_title(kpi: str) -> str:
    """The catalogue's title ("Win rate"); a name the catalogue does not know, as it is."""
    return REGISTRY[kpi].title if kpi in REGISTRY else kpi


def in_unit(kpi: str, value: float | None, currency: str = "") -> str:
    """`value` in the KPI's unit: 26.1%, 132,551 USD, 59.7 days; "no data" when None."""
    return show_value(value, REGISTRY[kpi].unit if kpi in REGISTRY else "", currency)
