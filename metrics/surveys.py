"""Survey KPIs: NPS of customers and eNPS of employees (an aggregate only, see `metrics.anonymity`)."""

from __future__ import annotations

from sqlalchemy import literal

from metrics.declaration import Kpi, Ratio

ANSWERED = "survey_responses.answered_at"

KPIS = [
    Kpi(
        "nps",
        "Net Promoter Score",
        "Percent of promoters (9-10) minus percent of detractors (0-6) among answers in the period.",
        "score",
        ("org", "account", "segment"),
        ANSWERED,
        "higher",
        "nps",
        Ratio(lambda t: t.c.promoter - t.c.detractor, lambda t: literal(1), scale=100.0),
        "no NPS answer in the period",
    ),
    Kpi(
        "detractor_share",
        "Detractor share",
        "Detractor answers (0-6) over all NPS answers in the period.",
        "ratio",
        ("org", "account", "segment"),
        ANSWERED,
        "lower",
        "nps",
        Ratio(lambda t: t.c.detractor, lambda t: literal(1)),
        "no NPS answer in the period",
        notes="watch it monthly; alert on a rise",
    ),
    Kpi(
        "enps",
        "Employee Net Promoter Score",
        "Percent of promoters minus percent of detractors among employees' answers in the period.",
        "score",
        ("org", "team"),
        ANSWERED,
        "higher",
        "enps",
        Ratio(lambda t: t.c.promoter - t.c.detractor, lambda t: literal(1), scale=100.0),
        "no eNPS answer in the period",
        tags=("anonymous",),
        notes="never shown for a group under metrics.anonymity_minimum answers, nor derivable",
    ),
]
