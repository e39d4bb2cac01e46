"""The `[metrics]` table of settings.toml: role mappings, rates, inputs, goals and alerts.

Everything the KPI engine reads from settings is validated here once, with every bad key named by
its full path (`metrics.roles.margin: ...`). Inputs that live outside the CRM (quotas, spend) come
from `[[metrics.quotas]]` / `[[metrics.spend]]` entries or from CSV files named in `[metrics.inputs]`.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.config import Settings, SettingsDate, StrictModel, validate_model
from kpisync.errors import ConfigError

PeriodKind = Literal["week", "month", "quarter", "year"]
M = TypeVar("M", bound=StrictModel)


class Roles(StrictModel):
    """CRM values that give a canonical column its KPI meaning (compared case-insensitively)."""

    no_decision_reasons: tuple[str, ...] = ("no decision",)
    upgrade_types: tuple[str, ...] = ("upgrade",)
    cross_sell_types: tuple[str, ...] = ("cross_sell", "cross-sell", "cross sell")
    former_customer_types: tuple[str, ...] = ("former_customer", "former customer")
    qualified_lead_statuses: tuple[str, ...] = ("qualified", "converted")
    required_stages: tuple[str, ...] = ()
    proposal_stages: tuple[str, ...] = ()
    selling_activity_kinds: tuple[str, ...] = ("call", "meeting")
    margin: Literal["amount", "fraction"] = "amount"  # deals.margin: money, or a share of amount
    region: Literal["account", "rep"] = "account"  # account region/country, or the rep's region
    segment_field: str | None = None  # accounts.custom key holding the segment
    churn_rule: Literal["type", "renewal"] = "type"
    churn_date_field: str | None = None  # accounts.custom key with the churn date (rule "type")
    contract_days: int = Field(default=365, ge=1)
    renewal_grace_days: int = Field(default=30, ge=0)


class DatedRate(StrictModel):
    from_: date = Field(alias="from")
    rate: float = Field(gt=0)


class WorkingHours(StrictModel):
    hours_per_day: float = Field(default=8.0, gt=0, le=24)
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )


class Quota(StrictModel):
    """A revenue quota for one rep (user external id or email) or one team, for one period.

    `currency` (default: the corporate one) is converted at the settings' rate in force on
    `start`; a currency with no rate is refused when the settings are read.
    """

    period: PeriodKind
    start: SettingsDate
    amount: float = Field(ge=0)
    rep: str | None = None
    team: str | None = None
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$")

    @model_validator(mode="after")
    def _one_owner(self) -> Quota:
        if (self.rep is None) == (self.team is None):
            raise ValueError("give exactly one of rep or team")
        return self


class Spend(StrictModel):
    """Sales and marketing spend for one period, org-wide or for one team or region."""

    period: PeriodKind
    start: SettingsDate
    amount: float = Field(ge=0)
    team: str | None = None
    region: str | None = None


class Inputs(StrictModel):
    quotas_csv: Path | None = None  # columns: period,start,amount,rep|team
    spend_csv: Path | None = None  # columns: period,start,amount[,team][,region]


class Goal(StrictModel):
    name: str
    kpi: str
    target: float
    period: PeriodKind = "quarter"
    grain: str = "org"
    key: str = "org"
    kind: Literal["annual", "team", "individual", "activity", "stretch"] = "team"
    start: SettingsDate | None = None  # default: the period containing now


class AlertRule(StrictModel):
    """Raise once when the KPI crosses a bound; again only after it came back."""

    name: str
    kpi: str
    period: PeriodKind = "month"
    grain: str = "org"
    key: str | None = None  # None: every key of the grain
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self


class Webhook(StrictModel):
    url: str | None = None
    url_env: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


def recent_weeks() -> dict[PeriodKind, int]:
    return {"week": 13}


class MetricSettings(StrictModel):
    history_years: int = Field(default=2, ge=1, le=20)
    # days a superseded version of a value stays for `kpis --history`; 0 keeps every version
    snapshot_days: int = Field(default=180, ge=0)
    recent_periods: dict[PeriodKind, int] = Field(
        default_factory=recent_weeks
    )  # keep only the latest n of a kind
    anonymity_minimum: int = Field(default=5, ge=2)
    engagement_days: int = Field(default=30, ge=1)
    stalled_factor: float = Field(default=1.5, gt=0)
    nps_window_days: int = Field(default=365, ge=1)  # account NPS; eNPS: see records.enps_period
    goal_alerts: bool = True  # alert when a goal goes off pace
    roles: Roles = Roles()
    currency_rates: dict[str, float | list[DatedRate]] = Field(default_factory=dict)
    working_hours: WorkingHours = WorkingHours()
    inputs: Inputs = Inputs()
    quotas: tuple[Quota, ...] = ()
    spend: tuple[Spend, ...] = ()
    goals: tuple[Goal, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    webhook: Webhook = Webhook()

    @field_validator("currency_rates")
    @classmethod
    def _codes(
        cls, value: dict[str, float | list[DatedRate]]
    ) -> dict[str, float | list[DatedRate]]:
        for code in value:
            if len(code) != 3 or not code.isupper():
                raise ValueError(f"{code!r} is not an ISO 4217 code such as 'EUR'")
        return value


class MetricConfig:
    """What the engine needs: the metric settings plus the org's zone, currency and base folder."""

    def __init__(
        self,
        metrics: MetricSettings,
        *,
        timezone: str = "UTC",
        currency: str = "USD",
        base: Path | None = None,
        calendar: Calendar = GREGORIAN,
    ) -> None:
        self.metrics = metrics
        self.calendar = calendar
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.currency = currency
        self.base = base or Path(".")
        self.quotas: tuple[Quota, ...] = tuple(
            self._in_corporate(quota)
            for quota in (
                metrics.quotas
                + read_csv_rows(
                    Quota, self.resolve(metrics.inputs.quotas_csv), "metrics.inputs.quotas_csv"
                )
            )
        )
        self.spend: tuple[Spend, ...] = metrics.spend + read_csv_rows(
            Spend, self.resolve(metrics.inputs.spend_csv), "metrics.inputs.spend_csv"
        )

    def _in_corporate(self, quota: Quota) -> Quota:
        if quota.currency is None or quota.currency == self.currency:
            return quota
        rate = settings_rate(self.metrics.currency_rates, quota.currency, quota.start)
        if rate is None:
            raise ConfigError(
                f"metrics: the quota of {quota.rep or quota.team} from {quota.start} is in "
                f"{quota.currency}, which has no rate in metrics.currency_rates",
                hint=f"add {quota.currency} = <{self.currency} per {quota.currency}> to "
                f"[metrics.currency_rates], or give the quota in {self.currency}",
            )
        return quota.model_copy(update={"amount": quota.amount * rate, "currency": None})

    def resolve(self, path: Path | None) -> Path | None:
        if path is None or path.is_absolute():
            return path
        return self.base / path


def settings_rate(
    rates: dict[str, float | list[DatedRate]], currency: str, on: date
) -> float | None:
    """The settings' rate of `currency` on `on`, picked as metrics.money.converted picks it."""
    rate = rates.get(currency)
    if rate is None or isinstance(rate, float | int):
        return rate
    dated = sorted(rate, key=lambda entry: entry.from_)
    in_force = [entry for entry in dated if entry.from_ <= on]
    return (in_force[-1] if in_force else dated[0]).rate


def metric_config(settings: Settings) -> MetricConfig:
    """The validated `[metrics]` table of `settings`, with the org's zone and currency."""
    metrics = validate_model(MetricSettings, settings.table("metrics"), prefix="metrics")
    base = settings.path.parent if settings.path is not None else None
    return MetricConfig(
        metrics,
        timezone=settings.core.timezone,
        currency=settings.core.currency,
        base=base,
        calendar=settings.core.period_calendar,
    )


def read_csv_rows(model: type[M], path: Path | None, key: str) -> tuple[M, ...]:
    if path is None:
        return ()
    if not path.exists():
        raise ConfigError(f"{key}: {path} not found", hint="fix the path or remove the key")
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            cleaned = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
            rows.append(validate_model(model, cleaned, prefix=f"{path.name} line {line}"))
    return tuple(rows)
