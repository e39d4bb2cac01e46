"""CRM-held conversion rates and quotas: Salesforce's DatedConversionRate, CurrencyType and
ForecastingQuota synced through the emulator, then used by revenue and quota attainment.

The org is cut down to three won deals of one rep, so every figure is worked out by hand:
  EUR 1,000.00 closed 2026-06-15, EUR 1,000.00 closed 2026-07-15, USD 500.00 closed 2026-07-20.
Dated rates (units of EUR per USD): 0.8 until 2026-07-01, 0.5 from then on. So revenue is
1000 / 0.8 = 1,250 in Q2 2026 and 1000 / 0.5 + 500 = 2,500 in Q3 2026. ForecastingQuota gives
the rep 5,000 for Q3: attainment 2,500 / 5,000 = 0.5. Settings say EUR = 1.08 USD and a Q3 quota
of 10,000: used only where the CRM has nothing (Q2 1,080; Q3 1,580; attainment 0.158).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from emulators.org.finance import add_rates_and_quotas
from emulators.org.generate import generate_org
from emulators.org.model import ExchangeRate, Org, OwnerChange, RepQuota, StageChange
from emulators.salesforce.emulator import SalesforceEmulator, make_id
from kpisync.config import parse_settings
from kpisync.errors import ConfigError
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.engine import compute_values
from metrics.options import metric_config
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import assert_store_equals_truth

NOW = datetime(2026, 10, 31, tzinfo=UTC)
Q2, Q3 = date(2026, 4, 1), date(2026, 7, 1)


def three_deal_org(
    *, rates: bool, quotas: bool, quota_currency: str = "USD", quota_amount: str = "5000"
) -> Org:
    org = generate_org(seed=13, deals=40)
    rep = org.reps[0]
    template = next(d for d in org.deals if d.stage == "closed_won")
    deals = []
    for number, (currency, amount, closed) in enumerate(
        [
            ("EUR", "1000.00", date(2026, 6, 15)),
            ("EUR", "1000.00", date(2026, 7, 15)),
            ("USD", "500.00", date(2026, 7, 20)),
        ],
        start=1,
    ):
        created = datetime(closed.year, closed.month, closed.day, 9, tzinfo=UTC) - timedelta(
            days=30
        )
        won_at = datetime(closed.year, closed.month, closed.day, 15, tzinfo=UTC)
        deals.append(
            dataclasses.replace(
                template,
                id=number,
                owner_id=rep.id,
                amount=Decimal(amount),
                currency=currency,
                created_at=created,
                close_date=closed,
                margin=None,
                modified_at=won_at,
                stage_history=[
                    StageChange("appointment_scheduled", created),
                    StageChange("closed_won", won_at),
                ],
                owner_history=[OwnerChange(rep.id, created)],
                line_items=[],
                custom={"Deal category": "new"},
            )
        )
    org.deals = deals
    for lead in org.leads:
        lead.converted_deal_id = None
    for activity in org.activities:
        activity.deal_id = None
    if rates:
        org.exchange_rates = [
            ExchangeRate("EUR", Decimal("0.8"), date(2026, 1, 1)),
            ExchangeRate("EUR", Decimal("0.5"), Q3),
        ]
    if quotas:
        org.quotas = [RepQuota(rep.id, Q3, Decimal(quota_amount), quota_currency)]
    return org


def synced(org: Org, tmp_path: Path) -> tuple[Engine, dict[str, Any]]:
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with SalesforceEmulator(org) as emulator:
        connector = SalesforceEnv(org, emulator).connector()
        result = sync_source(engine, SOURCE, connector, SyncOptions())
        assert result.status == "succeeded", result.error
        dump = emulator.dump()
    assert_store_equals_truth(engine, dump)
    return engine, dump


def figures(engine: Engine, rep: str, **quota: Any) -> dict[tuple[str, date, str], float | None]:
    settings = parse_settings(
        {
            "kpisync": {"timezone": "UTC", "currency": "USD"},
            "metrics": {
                "currency_rates": {"EUR": 1.08},
                "quotas": [
                    {
                        "period": "quarter",
                        "start": "2026-07-01",
                        "amount": 10000,
                        "rep": rep,
                        **quota,
                    }
                ],
            },
        }
    )
    with engine.begin() as connection:
        values = compute_values(
            connection, metric_config(settings), now=NOW, only=["sales_volume", "quota_attainment"]
        )
    return {
        (v.kpi, v.period_start, v.grain): None if v.value is None else round(v.value, 9)
        for v in values
        if v.period == "quarter" and v.period_start in (Q2, Q3) and v.grain in ("org", "rep")
    }


def test_dated_rates_and_forecasting_quota_from_salesforce(tmp_path: Path) -> None:
    org = three_deal_org(rates=True, quotas=True)
    engine, dump = synced(org, tmp_path)
    assert {r["IsoCode"] for r in dump["DatedConversionRate"].values()} == {"EUR", "USD"}
    rep = make_id("User", org.reps[0].id)
    assert figures(engine, rep) == {
        ("sales_volume", Q2, "org"): 1250.0,
        ("sales_volume", Q2, "rep"): 1250.0,
        ("sales_volume", Q3, "org"): 2500.0,
        ("sales_volume", Q3, "rep"): 2500.0,
        ("quota_attainment", Q3, "rep"): 0.5,
        ("quota_attainment", Q3, "org"): 0.5,
    }


def test_without_the_objects_settings_rates_and_quotas_apply(tmp_path: Path) -> None:
    org = three_deal_org(rates=False, quotas=False)
    engine, dump = synced(org, tmp_path)
    assert not {"CurrencyType", "DatedConversionRate", "ForecastingQuota"} & dump.keys()
    rep = make_id("User", org.reps[0].id)
    assert figures(engine, rep) == {
        ("sales_volume", Q2, "org"): 1080.0,
        ("sales_volume", Q2, "rep"): 1080.0,
        ("sales_volume", Q3, "org"): 1580.0,
        ("sales_volume", Q3, "rep"): 1580.0,
        ("quota_attainment", Q3, "rep"): 0.158,
        ("quota_attainment", Q3, "org"): 0.158,
    }


def test_quotas_in_another_currency_are_converted_at_their_period_start(tmp_path: Path) -> None:
    """A ForecastingQuota of EUR 2,000 for Q3 at the Q3 rate 0.5 is USD 4,000: 2,500 / 4,000.
    Without CRM objects, a settings quota of EUR 10,000 at 1.08 is USD 10,800: 1,580 / 10,800."""
    crm = three_deal_org(rates=True, quotas=True, quota_currency="EUR", quota_amount="2000")
    (tmp_path / "crm").mkdir()
    (tmp_path / "plain").mkdir()
    engine, _ = synced(crm, tmp_path / "crm")
    rep = make_id("User", crm.reps[0].id)
    attainment = {k: v for k, v in figures(engine, rep).items() if k[0] == "quota_attainment"}
    assert attainment == {
        ("quota_attainment", Q3, "rep"): 0.625,
        ("quota_attainment", Q3, "org"): 0.625,
    }
    plain = three_deal_org(rates=False, quotas=False)
    engine, _ = synced(plain, tmp_path / "plain")
    rep = make_id("User", plain.reps[0].id)
    attainment = {
        k: v for k, v in figures(engine, rep, currency="EUR").items() if k[0] == "quota_attainment"
    }
    assert attainment == {
        ("quota_attainment", Q3, "rep"): round(1580 / 10800, 9),
        ("quota_attainment", Q3, "org"): round(1580 / 10800, 9),
    }
    with pytest.raises(ConfigError, match="GBP, which has no rate in metrics.currency_rates"):
        figures(engine, rep, currency="GBP")


def test_a_crm_quota_without_a_rate_is_never_summed_raw(tmp_path: Path) -> None:
    """GBP has no rate in the CRM or the settings: the rep's Q3 counts as having no CRM quota,
    so the settings quota of USD 10,000 applies (1,580 / 10,000), never GBP 5,000 as dollars."""
    org = three_deal_org(rates=False, quotas=True, quota_currency="GBP")
    engine, _ = synced(org, tmp_path)
    rep = make_id("User", org.reps[0].id)
    attainment = {k: v for k, v in figures(engine, rep).items() if k[0] == "quota_attainment"}
    assert attainment == {
        ("quota_attainment", Q3, "rep"): 0.158,
        ("quota_attainment", Q3, "org"): 0.158,
    }


def test_undated_currency_type_rates_when_advanced_currency_management_is_off(
    tmp_path: Path,
) -> None:
    """CurrencyType only: EUR 0.8 per USD whatever the date, so 1,250 and 1,250 + 500."""
    org = three_deal_org(rates=False, quotas=False)
    org.exchange_rates = [ExchangeRate("EUR", Decimal("0.8"))]
    engine, dump = synced(org, tmp_path)
    assert "DatedConversionRate" not in dump and len(dump["CurrencyType"]) == 2
    rep = make_id("User", org.reps[0].id)
    values = figures(engine, rep)
    assert values[("sales_volume", Q2, "org")] == 1250.0
    assert values[("sales_volume", Q3, "org")] == 1750.0


@pytest.mark.parametrize("dated", [True, False])
def test_generated_rates_and_quotas_leave_the_rest_of_the_org_unchanged(dated: bool) -> None:
    plain = generate_org(seed=5, deals=60)
    extended = add_rates_and_quotas(generate_org(seed=5, deals=60), dated=dated)
    assert repr(dataclasses.replace(extended, exchange_rates=[], quotas=[])) == repr(plain)
    assert extended.exchange_rates and extended.quotas
    assert add_rates_and_quotas(generate_org(seed=5, deals=60), dated=dated) == extended
