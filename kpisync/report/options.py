"""The `[report]` table of settings.toml: what the report shows and how it is e-mailed.

    [report]
    title = "Sales report"
    period = "month"                      # week | month | quarter | year
    tiles = ["sales_volume", "win_rate", ...]
    trends = ["sales_volume", "win_rate", ...]
    leaderboard_size = 20
    stale_after_hours = 26                # a source not synced for longer is flagged

    [report.email]
    host = "smtp.example.com"
    port = 587
    security = "starttls"                 # starttls | ssl | none (none: loopback hosts only)
    username = "reports@example.com"
    password_env = "KPISYNC_SMTP_PASSWORD"
    sender = "kpisync <reports@example.com>"
    recipients = ["sales-managers@example.com"]

    [report.email.schedule]               # read by the scheduler: when to send it
    cron = "0 7 * * mon"                  # or interval_minutes = 10080

The password is never written here: `password_env` names the environment variable holding it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from kpisync.config import ScheduleSettings, Settings, StrictModel, validate_model
from metrics import REGISTRY

PeriodKind = Literal["week", "month", "quarter", "year"]
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}

DEFAULT_TILES = (
    "sales_volume",
    "win_rate",
    "average_deal_size",
    "new_opportunities",
    "sales_cycle_time",
    "quota_attainment",
    "nps",
    "churn_rate",
)
DEFAULT_TRENDS = (
    "sales_volume",
    "win_rate",
    "new_opportunities",
    "average_deal_size",
    "sales_cycle_time",
    "nps",
)


def known_kpis(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown KPI {unknown[0]!r}; known: {', '.join(REGISTRY.names())}")
    return names


def trend_lengths() -> dict[PeriodKind, int]:
    """How many periods a trend chart covers, by period kind."""
    return {"week": 13, "month": 12, "quarter": 8, "year": 3}


KpiNames = Annotated[tuple[str, ...], AfterValidator(known_kpis)]


class EmailSettings(StrictModel):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str
    recipients: tuple[str, ...] = Field(min_length=1)
    subject: str = "{title}: {period}"  # {title} and {period} are filled in
    period: PeriodKind | None = None  # default: report.period
    timeout_seconds: float = Field(default=30.0, gt=0)
    schedule: ScheduleSettings = ScheduleSettings()

    @model_validator(mode="after")
    def _safe_login(self) -> EmailSettings:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env, or neither")
        if self.username and self.security == "none" and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                'a password is never sent unencrypted: use security = "starttls" or "ssl"'
            )
        return self


class ReportSettings(StrictModel):
    title: str = "Sales report"
    period: PeriodKind = "month"
    tiles: KpiNames = DEFAULT_TILES
    trends: KpiNames = DEFAULT_TRENDS
    trend_periods: dict[PeriodKind, int] = Field(default_factory=trend_lengths)
    leaderboard_size: int = Field(default=20, ge=1)
    wins_shown: int = Field(default=10, ge=0)
    stale_after_hours: float = Field(default=26.0, gt=0)
    email: EmailSettings | None = None


def report_settings(settings: Settings) -> ReportSettings:
    """The validated `[report]` table (every key optional)."""
    return validate_model(ReportSettings, settings.table("report"), prefix="report")


def delivery_schedule(settings: Settings) -> ScheduleSettings | None:
    """When the scheduler should e-mail the report: `[report.email.schedule]`, or None if unset."""
    email = report_settings(settings).email
    if email is None:
        return None
    schedule = email.schedule
    return schedule if schedule.cron or schedule.interval_minutes else None
