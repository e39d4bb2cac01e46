"""The rules scores are computed under: the `[writeback]` rule settings and a run's parameters.

Kept apart from `writeback.options` (which maps scores to CRM fields) so that the score SQL
(`writeback.scores`, `writeback.upsell`) and the settings both depend on it, not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import Field

from kpisync.config import StrictModel
from metrics import MetricConfig


class UpsellRule(StrictModel):
    promoter: bool = True
    active_within_days: int = Field(default=30, ge=0)
    won_before: bool = True
    no_open_upgrade: bool = True


class WritebackSettings(StrictModel):
    on_conflict: Literal["overwrite", "skip"] = "overwrite"
    quota_period: Literal["week", "month", "quarter", "year"] = "quarter"
    upsell: UpsellRule = UpsellRule()
    # days a finished run keeps its outbox and audit rows (and so can be reverted); 0: forever
    keep_days: int = Field(default=90, ge=0)


@dataclass(frozen=True)
class ScoreParams:
    """Everything the score SQL needs besides the store: the instant and the rules."""

    as_of: datetime  # aware UTC
    today: date  # the org's local date of `as_of`
    metrics: MetricConfig
    rules: WritebackSettings
