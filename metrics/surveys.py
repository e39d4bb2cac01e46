"""Survey KPIs: NPS of customers and eNPS of employees (an aggregate only, see `metrics.anonymity`)."""

from __future__ import annotations

from sqlalchemy import literal

from metrics.declaration import Kpi, Ratio

ANSWERED = "survey_responses.answered_at"

KPIS = [
    Kpi(
        name="nps",
        title="Net Promoter Score",
        definition="Percent of promoters (9-10) minus percent of detractors (0-6) among answers in the period.",
        unit="score",
        grains=("org", "account", "segment"),
        period_date=ANSWERED,
        direction="higher",
        fact="nps",
        measure=Ratio(lambda t: t.c.promoter - t.c.detractor, lambda t: literal(1), scale=100.0),
        empty_reason="no NPS answer in the period",
    ),
    Kpi(
        name="detractor_share",
        title="Detractor share",
        definition="Detractor answers (0-6) over all NPS answers in the period.",
        unit="ratio",
        grains=("org", "account", "segment"),
        period_date=ANSWERED,
        direction="lower",
        fact="nps",
        measure=Ratio(lambda t: t.c.detractor, lambda t: literal(1)),
        empty_reason="no NPS answer in the period",
        notes="watch it monthly; alert on a rise",
    ),
    Kpi(
        name="enps",
        title="Employee Net Promoter Score",
        definition="Percent of promoters minus percent of detractors among employees' answers in the period.",
        unit="score",
        grains=("org", "team"),
        period_date=ANSWERED,
        direction="higher",
        fact="enps",
        measure=Ratio(lambda t: t.c.promoter - t.c.detractor, lambda t: literal(1), scale=100.0),
        empty_reason="no eNPS answer in the period",
        tags=("anonymous",),
        notes="never shown for a group under metrics.anonymity_minimum answers, nor derivable",
    ),
]
