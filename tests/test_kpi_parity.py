"""KPI parity: one seeded org synced from every CRM emulator gives the same KPI values.

Compared at the org and team grains (rep and account keys are vendor ids), for every KPI but
those whose inputs some CRM does not hold (NOT_COMPARABLE, each with its reason).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from kpisync.config import parse_settings
from kpisync.sandbox.orggen import generate_org
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.catalogue import REGISTRY
from metrics.engine import compute_values
from metrics.options import metric_config
from tests.harness import available_kits

# KPIs whose inputs some CRM does not hold the same way; every other KPI must agree exactly.
NOT_COMPARABLE = {
    "units_sold": "Vtiger carries no line items (neither its connector nor its emulator reads "
                  "product lines); HubSpot and Salesforce agree",
    "cross_sell_rate": "counts first purchases of a product from line items, which Vtiger "
                       "lacks; HubSpot and Salesforce agree",
    "lead_response_time": "Salesforce re-points a converted lead's activities to the contact",
    "follow_up_persistence": "the same",
    "qualified_leads": "lead status words differ per CRM",
    "qualified_leads_growth": "the same",
    "new_leads": "Vtiger's webservice hides converted leads (query and retrieve skip them; "
                 "sync lists them among the deleted ids)",
    "customer_acquisition_rate": "the same",
    "time_to_acquisition": "the same",
    "lead_data_quality": "the same",
    "stage_duration": "Vtiger has no stage history: kpisync observes it from its own syncs",
    "rep_ramp_time": "Vtiger users carry no start date",
    "rep_ramp_to_quota": "the same",
    "selling_hours": "Vtiger keeps activity durations to the minute",
    "selling_time_share": "the same",
    "customer_engagement": "Vtiger's emails are events with another activity time",
    "proposals_sent": "the same",
}
SHARED_KPIS = tuple(name for name in REGISTRY.names() if name not in NOT_COMPARABLE)
KITS = available_kits()


def kpi_values(engine: Engine, now: datetime) -> dict[tuple[str, str, object, str, str], object]:
    settings = parse_settings({"kpisync": {"timezone": "Europe/Warsaw", "currency": "USD"},
                               "metrics": {"currency_rates": {"EUR": 1.08, "GBP": 1.27,
                                                              "PLN": 0.25}}})
    with engine.begin() as connection:
        values = compute_values(connection, metric_config(settings), now=now, only=SHARED_KPIS)
    return {(v.kpi, v.period, v.period_start, v.grain, v.key):
            (None if v.value is None else round(float(v.value), 6), v.count)
            for v in values if v.kpi in SHARED_KPIS and v.grain in ("org", "team")}


def test_the_same_org_gives_the_same_kpis_from_every_crm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert [kit.name for kit in KITS] == ["hubspot", "salesforce", "vtiger", "vtiger-stock82"]
    org = generate_org(seed=21, deals=120)
    now = datetime(2026, 10, 31, tzinfo=UTC)
    results = {}
    for kit in KITS:
        engine = open_store(f"sqlite:///{tmp_path / kit.name}.db")
        with kit.serve(org) as served:
            result = sync_source(engine, served.source, served.connector(), SyncOptions())
            assert result.status == "succeeded"
        results[kit.name] = kpi_values(engine, now)
        engine.dispose()
    reference_name, reference = next(iter(results.items()))
    assert len(reference) > 100
    assert sum(1 for value, _ in reference.values() if value is not None) > 100
    for name, values in results.items():
        differing = sorted(k for k in reference if reference[k] != values.get(k))[:5]
        assert not differing, (f"{name} differs from {reference_name}: " + "; ".join(
            f"{k}: {reference[k]} vs {values.get(k)}" for k in differing))
