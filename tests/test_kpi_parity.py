"""KPI parity: one seeded org synced from every CRM emulator gives the same KPI values.

Compared at every grain but rep and account (their keys are vendor ids), every KPI against the
HubSpot reference, except
- where a CRM cannot serve a KPI at all (CANNOT_SERVE: it does not hold the input): there every
  value of the KPI must be "no data", with the reason naming the missing input, never 0;
- where a CRM holds the KPI's inputs differently (NOT_COMPARABLE, with the reason): the KPI is
  still compared across all the others.
The segment field is named by its label ("Segment"): HubSpot's `segment`, Salesforce's
`Segment__c` and Vtiger's `cf_NNN` are each found through the field catalog.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from emulators.org.generate import generate_org
from kpisync.config import parse_settings
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.engine import compute_values
from metrics.holdings import INPUTS
from metrics.options import metric_config
from tests.harness import available_kits

VTIGER = frozenset({"vtiger", "vtiger-stock82"})
SALESFORCE = frozenset({"salesforce"})
# KPI -> (the CRMs that cannot serve it, the input they lack: see metrics.holdings).
CANNOT_SERVE: dict[str, tuple[frozenset[str], str]] = {
    "units_sold": (VTIGER, "line_items"),  # Vtiger's potentials carry no line items
    "proposals_sent": (VTIGER, "stage_history"),  # its API keeps no stage history
    "process_adherence": (VTIGER, "stage_history"),
    "rep_ramp_time": (VTIGER, "start_dates"),  # Vtiger users carry no start date
    "rep_ramp_to_quota": (VTIGER, "start_dates"),
}
# KPI -> (the CRMs that differ from HubSpot on it, why). Every other pair must agree exactly.
NOT_COMPARABLE: dict[str, tuple[frozenset[str], str]] = {
    "cross_sell_rate": (VTIGER, "counts first purchases of a product, from line items"),
    "lead_response_time": (
        SALESFORCE | VTIGER,
        (
            "Salesforce tasks keep no email direction (every synced email counts as outbound); "
            "Vtiger hides converted leads"
        ),
    ),
    "follow_up_persistence": (
        SALESFORCE | VTIGER,
        ("the same, and Salesforce dates a conversion to the day (ConvertedDate), not the instant"),
    ),
    "new_leads": (
        VTIGER,
        (
            "Vtiger's query hides converted leads: one converted before kpisync "
            "first read it is never seen (one converted later is kept, converted)"
        ),
    ),
    "qualified_leads": (VTIGER, "the same"),
    "qualified_leads_growth": (VTIGER, "the same"),
    "customer_acquisition_rate": (VTIGER, "the same"),
    "time_to_acquisition": (VTIGER, "the same"),
    "lead_data_quality": (VTIGER, "the same"),
    "stage_duration": (VTIGER, "Vtiger has no stage history; kpisync observes it by syncing"),
    "selling_hours": (VTIGER, "Vtiger keeps activity durations to the minute"),
    "selling_time_share": (VTIGER, "the same"),
    "customer_engagement": (VTIGER, "Vtiger's emails are events with another activity time"),
}
# The same, for one grain of a KPI only.
GRAIN_NOT_COMPARABLE: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("new_customers", "source"): (
        VTIGER,
        (
            "a customer's source falls back on its converted "
            "lead's, and Vtiger hides converted leads"
        ),
    ),
}
ALL_AGREE: tuple[frozenset[str], str] = (frozenset(), "")
KITS = available_kits()
Key = tuple[str, str, object, str, str]  # kpi, period, period start, grain, key
Value = tuple[float | None, int | None]  # value, count
VENDOR_KEYED = ("rep", "account")  # grains keyed by vendor ids, which differ per CRM
# No values to compare here: an account-grain KPI, and two whose inputs (marketing spend, quotas)
# come from settings this org leaves out.
WITHOUT_VALUES = {"days_since_last_touch", "cac", "quota_attainment"}
# Each CRM's word for a qualified lead: HubSpot's CONNECTED, Salesforce's and Vtiger's Qualified.
QUALIFIED = ["qualified", "connected"]


def comparable(kit: str) -> tuple[str, ...]:
    return tuple(
        name
        for name in REGISTRY.names()
        if kit not in NOT_COMPARABLE.get(name, ALL_AGREE)[0]
        and kit not in CANNOT_SERVE.get(name, ALL_AGREE)[0]
    )


def unserved(kit: str) -> dict[str, str]:
    """KPI -> the reason its values must give on `kit`."""
    return {
        name: "no data: " + INPUTS[held].reason
        for name, (kits, held) in CANNOT_SERVE.items()
        if kit in kits
    }


def compared_grains(kit: str, values: dict[Key, Value]) -> dict[Key, Value]:
    """`values` without the (KPI, grain) pairs `kit` cannot match."""
    return {
        k: v
        for k, v in values.items()
        if kit not in GRAIN_NOT_COMPARABLE.get((k[0], k[3]), ALL_AGREE)[0]
    }


def compute(engine: Engine, now: datetime) -> list[KpiValue]:
    settings = parse_settings(
        {
            "kpisync": {"timezone": "Europe/Warsaw", "currency": "USD"},
            "metrics": {
                "currency_rates": {"EUR": 1.08, "GBP": 1.27, "PLN": 0.25},
                "roles": {"qualified_lead_statuses": QUALIFIED, "segment_field": "Segment"},
            },
        }
    )
    with engine.begin() as connection:
        return compute_values(connection, metric_config(settings), now=now)


def keyed(values: list[KpiValue], kpis: tuple[str, ...]) -> dict[Key, Value]:
    return {
        (v.kpi, v.period, v.period_start, v.grain, v.key): (
            None if v.value is None else round(float(v.value), 6),
            v.count,
        )
        for v in values
        if v.kpi in kpis and v.grain not in VENDOR_KEYED
    }


def test_the_same_org_gives_the_same_kpis_from_every_crm(tmp_path: Path) -> None:
    assert [kit.name for kit in KITS] == ["hubspot", "salesforce", "vtiger", "vtiger-stock82"]
    org = generate_org(seed=21, deals=120)
    now = datetime(2026, 10, 31, tzinfo=UTC)
    results: dict[str, dict[Key, Value]] = {}
    computed: dict[str, list[KpiValue]] = {}
    for kit in KITS:
        engine = open_store(f"sqlite:///{tmp_path / kit.name}.db")
        with kit.serve(org) as served:
            result = sync_source(engine, served.source, served.connector(), SyncOptions())
            assert result.status == "succeeded"
        computed[kit.name] = compute(engine, now)
        results[kit.name] = keyed(computed[kit.name], comparable(kit.name))
        engine.dispose()
    reference_name, reference = next(iter(results.items()))
    assert list(comparable(reference_name)) == REGISTRY.names()
    assert len(reference) > 100
    assert sum(1 for value, _ in reference.values() if value is not None) > 100
    assert {k[3] for k in reference if k[0] == "sales_volume"} >= {"segment", "region", "team"}
    for name, values in results.items():
        kpis = set(comparable(name))
        expected = compared_grains(name, {k: v for k, v in reference.items() if k[0] in kpis})
        values = compared_grains(name, values)
        assert {k[0] for k in expected} == kpis - WITHOUT_VALUES
        differing = sorted(
            k for k in expected.keys() | values.keys() if expected.get(k) != values.get(k)
        )[:5]
        assert not differing, f"{name} differs from {reference_name}: " + "; ".join(
            f"{k}: {expected.get(k)} vs {values.get(k)}" for k in differing
        )
        for kpi, reason in unserved(name).items():  # "no data" with the reason, never 0
            mine = [v for v in computed[name] if v.kpi == kpi]
            theirs = [v for v in computed[reference_name] if v.kpi == kpi]
            assert mine or not theirs, f"{kpi} has no value at all on {name}"
            wrong = [v for v in mine if v.value is not None or v.reason != reason][:3]
            assert not wrong, f"{kpi} on {name}: {wrong}"
            assert not [v for v in theirs if (v.reason or "").startswith("no data: ")]


def test_each_crm_is_compared_on_all_but_the_kpis_it_cannot_hold() -> None:
    assert {kit: len(comparable(kit)) for kit in ("hubspot", "salesforce", "vtiger")} == {
        "hubspot": 48,
        "salesforce": 46,
        "vtiger": 30,
    }
    assert {kit: sorted(unserved(kit)) for kit in ("hubspot", "salesforce", "vtiger")} == {
        "hubspot": [],
        "salesforce": [],
        "vtiger": [
            "process_adherence",
            "proposals_sent",
            "rep_ramp_time",
            "rep_ramp_to_quota",
            "units_sold",
        ],
    }
