"""How a KPI and its values read to people: the catalogue's title, and a value in its unit."""

from __future__ import annotations

from kpisync.formats import show_value
from kpisync.texts import localized, translate
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue


def kpi_title(kpi: str) -> str:
    """The catalogue's title ("Win rate"); a name the catalogue does not know, as it is."""
    return REGISTRY[kpi].title if kpi in REGISTRY else kpi


def in_unit(kpi: str, value: float | None, currency: str = "") -> str:
    """`value` in the KPI's unit: 26.1%, 132,551 USD, 59.7 days; "no data" when None."""
    return show_value(value, REGISTRY[kpi].unit if kpi in REGISTRY else "", currency)


def shown(value: KpiValue, currency: str = "", locale: str = "en") -> str:
    """The value with its unit (37.5%, 54,356 USD, 53.6 days), or "no data" and why; in Persian
    words and digits under locale fa (kpisync.texts)."""
    if value.value is None:
        return f"{translate('no data', locale)} ({translate(value.reason or '', locale)})"
    return localized(in_unit(value.kpi, value.value, currency), locale)
