"""Persian texts: every KPI has a Persian title in the catalogue, the sources' names where they
give one; values are written with Persian digits, separators and units."""

from __future__ import annotations

from kpisync.texts import localized, translate
from metrics.catalogue import REGISTRY


def test_every_kpi_has_a_persian_title() -> None:
    missing = [kpi.name for kpi in REGISTRY if translate(kpi.title, "fa") == kpi.title]
    assert missing == []
    assert translate("Quota attainment", "fa") == "دستیابی به سهم"
    assert translate("Sales cycle time", "fa") == "زمان چرخه فروش"
    assert translate("Sales process adherence", "fa") == "پایبندی به فرایند فروش"
    assert translate("Win rate", "en") == "Win rate"


def test_values_in_persian_form() -> None:
    assert localized("1,234.5 days", "fa") == "۱٬۲۳۴٫۵ روز"
    assert localized("47.3%", "fa") == "۴۷٫۳٪"
    assert localized("−12,000 IRR", "fa") == "−۱۲٬۰۰۰ ریال"
    assert localized("4.1 h", "fa") == "۴٫۱ ساعت"
    assert localized("no data (no rep has won)", "fa") == "بدون داده (no rep has won)"
    assert localized("1,234.5 days", "en") == "1,234.5 days"
