"""Per-record inputs for write-back, on the hand-checked org."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from kpisync.config import load_settings
from metrics.engine import compute_all
from metrics.options import metric_config
from metrics.records import (
    account_nps,
    latest_contact_answers,
    open_deal_stages,
    rep_scores,
    team_enps,
)
from tests.test_metrics_fixture import FIXTURE, NOW, load_org


def test_record_scores(engine: Engine) -> None:
    load_org(engine)
    config = metric_config(load_settings(FIXTURE / "settings.toml"))
    accounts = account_nps(engine, "crm", now=NOW, window_days=365)
    assert {k: (v.nps, v.answers, v.last_category) for k, v in accounts.items()} == {
        "a1": (100.0, 2, "promoter"),
        "a2": (-50.0, 2, "passive"),
        "a5": (0.0, 2, "promoter"),
    }
    latest = latest_contact_answers(engine, "crm")
    assert {k: (v.score, v.category) for k, v in latest.items()} == {
        "c1": (9, "promoter"),
        "c2": (8, "passive"),
        "c4": (3, "detractor"),
    }
    assert team_enps(engine, config, "crm", now=NOW) == {
        "Alpha": None,
        "Beta": None,
    }  # not computed
    compute_all(engine, config, now=NOW, only=["enps"])
    # the stored year 2025 (the 365-day window's period): as in Q1, Gamma is hidden by differencing
    assert team_enps(engine, config, "crm", now=NOW) == {"Alpha": 50.0, "Beta": None, "Gamma": None}
    in_q1 = datetime(2025, 3, 31, 12, tzinfo=UTC)
    compute_all(engine, config, now=in_q1, only=["quota_attainment", "win_rate"])
    reps = rep_scores(engine, config, now=in_q1)
    assert {k: (v.quota_attainment, round(v.win_rate or 0, 6)) for k, v in reps.items()} == {
        "u1": (0.5, 0.333333),
        "u2": (1.2, 1.0),
        "u3": (None, 0.333333),
        "u4": (None, 1.0),
    }
    stages = open_deal_stages(engine, config, "crm", now=NOW)
    assert list(stages) == ["d8"]
    assert stages["d8"].stage == "proposal"
    assert stages["d8"].days_in_stage == pytest.approx(16 + 2 / 24)
    assert stages["d8"].usual_days == pytest.approx(23 / 3)
    assert stages["d8"].stalled
