"""Write-back units: change detection decisions, value formats, the upsell rule, and the score SQL
on hand-made stores (SQLite and PostgreSQL) against hand-computed values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from typer.testing import CliRunner

from kpisync.cli import app
from kpisync.config import parse_settings
from kpisync.connector import FieldInfo
from kpisync.fieldcodec import GENERIC
from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    SurveyResponse,
    User,
)
from metrics.engine import compute_all
from metrics.options import metric_config
from writeback.options import score_params, source_plan
from writeback.planner import Change, Known, Written, decide, plan_changes
from writeback.values import encode, problem_with, same

NOW = datetime(2026, 10, 31, 12, tzinfo=UTC)
T0 = NOW - timedelta(days=10)


def settings(**writeback: Any) -> Any:
    return parse_settings(
        {
            "kpisync": {"timezone": "UTC"},
            "sources": {"s": {"type": "hubspot", "token_env": "X"}},
            "metrics": {
                "quotas": [
                    {"period": "quarter", "start": "2026-10-01", "amount": 1000.0, "rep": "u1"}
                ]
            },
            "writeback": {
                "s": {
                    "account": {
                        "nps_score": "f_nps",
                        "nps_category": "f_cat",
                        "upsell_flag": "f_up",
                        "upsell_reason": "f_why",
                    },
                    "contact": {"nps_score": "f_nps", "nps_last_answer": "f_last"},
                    "deal": {"days_in_stage": "f_days", "stalled": "f_stalled"},
                    "user": {"enps": "f_enps", "quota_attainment": "f_quota", "win_rate": "f_win"},
                },
                **writeback,
            },
        }
    )


# -- decisions ------------------------------------------------------------------------------------
TARGET = source_plan(settings(), "s").for_entity("account")[0]  # nps_score, a number


def known(
    synced: Any = None, present: bool = True, synced_at: Any = None, written: Written | None = None
) -> Known:
    return Known(synced=synced, synced_present=present, synced_at=synced_at, written=written)


def test_never_written_compares_with_the_synced_value() -> None:
    assert decide(TARGET, "1", "40", known("40.0", synced_at=T0), "overwrite", GENERIC) is None
    change = decide(TARGET, "1", "40", known(None, present=False), "overwrite", GENERIC)
    assert change == Change("account", "1", "f_nps", "nps_score", None, "40")


def test_a_sync_before_our_write_is_stale_and_one_after_it_that_read_it_back_is_ours() -> None:
    ours = Written("40", written_at=T0, gone_at=None)
    stale = known("12", synced_at=T0 - timedelta(hours=1), written=ours)
    assert decide(TARGET, "1", "40", stale, "overwrite", GENERIC) is None
    home = known("40", synced_at=T0 + timedelta(hours=1), written=ours)
    assert decide(TARGET, "1", "40", home, "overwrite", GENERIC) is None
    moved = decide(TARGET, "1", "45", home, "overwrite", GENERIC)
    assert moved is not None and moved.old == "40" and not moved.conflict


def test_a_person_changing_our_field_is_a_conflict() -> None:
    ours = Written("40", written_at=T0, gone_at=None)
    typed = known("99", synced_at=T0 + timedelta(hours=1), written=ours)
    change = decide(TARGET, "1", "40", typed, "overwrite", GENERIC)
    assert change is not None and change.conflict and change.person_value == "99"
    assert change.old == "99" and change.new == "40" and not change.skip
    skipped = decide(TARGET, "1", "40", typed, "skip", GENERIC)
    assert skipped is not None and skipped.skip
    agreed = known("41", synced_at=T0 + timedelta(hours=1), written=ours)
    assert decide(TARGET, "1", "41", agreed, "overwrite", GENERIC) is None


def test_a_record_gone_from_the_crm_is_skipped_until_a_sync_sees_it_again() -> None:
    gone = Written("40", written_at=T0, gone_at=T0 + timedelta(hours=1))
    assert (
        decide(TARGET, "1", "50", known("40", synced_at=T0, written=gone), "overwrite", GENERIC)
        is None
    )
    back = known("40", synced_at=T0 + timedelta(hours=2), written=gone)
    assert decide(TARGET, "1", "50", back, "overwrite", GENERIC) is not None


def test_values_compare_by_meaning() -> None:
    assert same("number", "42", "42.0") and not same("number", "42", "42.5")
    assert same("date", "2026-05-04", "2026-05-04T00:00:00.000Z")
    assert same("date", "2026-05-04", "1777852800000")
    assert same("bool", "true", "TRUE") and same("string", None, "")
    assert encode("number", Decimal("12.50")) == "12.5" and encode("number", 3) == "3"
    assert encode("bool", False) == "false" and encode("date", date(2026, 1, 2)) == "2026-01-02"


def test_drift_checks_refuse_what_the_field_cannot_hold() -> None:
    pick = FieldInfo("companies", "f", "f", "enumeration", True, True, ("promoter", "passive"))
    assert problem_with(pick, "detractor") and problem_with(pick, "passive") is None
    number = FieldInfo("companies", "n", "n", "number", True, True)
    assert problem_with(number, "abc") and problem_with(number, "-3.5") is None
    text = FieldInfo("companies", "t", "t", "string", True, True)
    assert problem_with(text, "x" * 70_000) and problem_with(text, "ok") is None


# -- the score SQL --------------------------------------------------------------------------------
def insert(engine: Engine, rows: list[Any]) -> None:
    with engine.begin() as connection:
        for row in rows:
            values = {k: getattr(row, k) for k in type(row).model_fields if k != "id"}
            values.update(source="s", synced_at=NOW - timedelta(days=1))
            connection.execute(type(row).__table__.insert().values(**values))


def nps(
    eid: str, score: int, days_ago: float, contact: str | None = None, account: str | None = None
) -> SurveyResponse:
    return SurveyResponse(
        external_id=eid,
        kind="nps",
        score=score,
        contact_id=contact,
        account_id=account,
        answered_at=NOW - timedelta(days=days_ago),
        source="s",
    )


def enps(eid: str, score: int, team: str | None) -> SurveyResponse:
    return SurveyResponse(
        external_id=eid,
        kind="enps",
        score=score,
        team=team,
        answered_at=NOW - timedelta(days=20),
        source="s",
    )


def planned(engine: Engine, config: Any) -> dict[tuple[str, str, str], str | None]:
    plan = source_plan(config, "s")
    with engine.connect() as connection:
        return {
            (c.entity, c.external_id, c.field): c.new
            for c in plan_changes(connection, plan, score_params(config, NOW), GENERIC)
        }


def test_scores_from_the_store_match_hand_computed_values(engine: Engine) -> None:
    insert(
        engine,
        [
            Account(external_id="a1", source="s"),
            Account(external_id="a2", source="s"),
            Account(external_id="a3", source="s", deleted_at=NOW),
            Contact(external_id="c1", account_id="a1", source="s"),
            Contact(external_id="c2", account_id="a1", source="s"),
            nps("n1", 10, 30, "c1", "a1"),
            nps("n2", 9, 3, "c1", "a1"),
            nps("n3", 3, 60, "c2", "a1"),
            nps("n4", 10, 400, "c2", "a1"),  # older than the window and than c2's latest answer
            nps("n5", 8, 5, None, "a2"),
            Activity(
                external_id="x1",
                kind="call",
                account_id="a1",
                occurred_at=NOW - timedelta(days=2),
                source="s",
            ),
            Deal(
                external_id="d1",
                account_id="a1",
                is_closed=True,
                is_won=True,
                close_date=date(2026, 10, 5),
                amount=Decimal(600),
                owner_id="u1",
                source="s",
            ),
            Deal(
                external_id="d2",
                account_id="a1",
                is_closed=True,
                is_won=False,
                close_date=date(2026, 10, 6),
                owner_id="u1",
                source="s",
            ),
            Deal(
                external_id="d3",
                stage="demo",
                owner_id="u1",
                source="s",
                created_at=NOW - timedelta(days=40),
            ),
            Deal(
                external_id="d4",
                stage="demo",
                owner_id="u2",
                source="s",
                created_at=NOW - timedelta(days=40),
            ),
            DealStageChange(
                external_id="h1",
                deal_id="d3",
                stage="demo",
                entered_at=NOW - timedelta(days=30),
                source="s",
            ),
            DealStageChange(
                external_id="h2",
                deal_id="d4",
                stage="qualify",
                entered_at=NOW - timedelta(days=14),
                source="s",
            ),
            DealStageChange(
                external_id="h3",
                deal_id="d4",
                stage="demo",
                entered_at=NOW - timedelta(days=10),
                source="s",
            ),
            DealStageChange(
                external_id="h4",
                deal_id="d1",
                stage="demo",
                entered_at=NOW - timedelta(days=45),
                source="s",
            ),
            DealStageChange(
                external_id="h5",
                deal_id="d1",
                stage="won",
                entered_at=NOW - timedelta(days=30),
                source="s",
            ),
            User(external_id="u1", team="big", source="s"),
            User(external_id="u2", team="small", source="s"),
            *[enps(f"e{i}", s, "big") for i, s in enumerate((10, 9, 9, 7, 3))],
            *[enps(f"f{i}", 10, "small") for i in range(4)],
            enps(
                "g0", 5, None
            ),  # no team: with "small" it makes a group of 5, so "big" stays shown
        ],
    )
    compute_all(
        engine,
        metric_config(settings()),
        now=NOW,  # quota, win rate, eNPS come from here
        only=("quota_attainment", "win_rate", "enps"),
    )
    values = planned(engine, settings())
    # a1: window answers 10, 9, 3 -> NPS (2-1)/3 = 33; the latest (9) makes it a promoter
    assert values[("account", "a1", "f_nps")] == "33"
    assert values[("account", "a1", "f_cat")] == "promoter"
    assert values[("account", "a1", "f_up")] == "true"
    assert values[("account", "a1", "f_why")] == (
        "Promoter by the latest NPS answer (account NPS 33 over the last 365 days), "
        "activity in the last 30 days, won a deal before, no open upgrade deal"
    )
    assert values[("account", "a2", "f_nps")] == "0"  # one passive
    assert not any(k[1] == "a3" for k in values)  # deleted records are never written
    assert values[("contact", "c1", "f_nps")] == "9"  # the latest answer
    assert values[("contact", "c1", "f_last")] == (NOW - timedelta(days=3)).date().isoformat()
    assert values[("contact", "c2", "f_nps")] == "3"
    # d3: 30 days in "demo"; the one completed stay there (d1) took 15 days: 30 > 1.5 x 15
    assert (
        values[("deal", "d3", "f_days")] == "30" and values[("deal", "d3", "f_stalled")] == "true"
    )
    assert (
        values[("deal", "d4", "f_days")] == "10" and values[("deal", "d4", "f_stalled")] == "false"
    )
    assert ("deal", "d1", "f_days") not in values  # closed: nothing to write over an empty field
    # eNPS: "big" has 5 answers (3 promoters, 1 detractor) -> 40; "small" has 4 < 5: never written
    assert values[("user", "u1", "f_enps")] == "40"
    assert ("user", "u2", "f_enps") not in values
    assert values[("user", "u1", "f_quota")] == "60" and values[("user", "u1", "f_win")] == "50"


def test_the_upsell_rule_is_configurable_and_explains_itself(engine: Engine) -> None:
    insert(
        engine,
        [
            Account(external_id="a1", source="s"),
            Contact(external_id="c1", account_id="a1", source="s"),
            nps("n1", 10, 30, "c1", "a1"),
            Activity(
                external_id="x1",
                kind="call",
                account_id="a1",
                occurred_at=NOW - timedelta(days=2),
                source="s",
            ),
            Deal(
                external_id="d1",
                account_id="a1",
                is_closed=True,
                is_won=True,
                close_date=date(2026, 1, 5),
                source="s",
            ),
            Deal(external_id="d2", account_id="a1", deal_type="Upgrade", source="s"),
        ],
    )
    values = planned(engine, settings())
    assert values[("account", "a1", "f_up")] == "false"
    assert values[("account", "a1", "f_why")] == "Not a candidate: an upgrade deal is already open"
    relaxed = planned(engine, settings(upsell={"no_open_upgrade": False}))
    assert relaxed[("account", "a1", "f_up")] == "true"
    assert relaxed[("account", "a1", "f_why")] == (
        "Promoter by the latest NPS answer (account NPS 100 over the last 365 days), "
        "activity in the last 30 days, won a deal before"
    )


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        f"""
[kpisync]
store = "sqlite:///{tmp_path / "store.db"}"
[sources.s]
type = "hubspot"
token_env = "KPISYNC_TEST_UNUSED_TOKEN"
[writeback.s.account]
nps_score = "f_nps"
""",
        "utf-8",
    )
    result = CliRunner().invoke(
        app,
        ["writeback", "--dry-run", "--settings", str(path)],
        env={"KPISYNC_TEST_UNUSED_TOKEN": "pat-unused"},
    )
    # every run, a dry run too, first checks the credentials: a CRM it cannot reach (or that
    # refuses the token) is one line and exit 3, with nothing planned or written
    assert result.exit_code == 3, result.output
    assert result.output.startswith("error: ") and "HubSpot" in result.output
    assert "Traceback" not in result.output and "would write" not in result.output
    bad = path.read_text("utf-8").replace("nps_score", "nps_scor")
    path.write_text(bad, "utf-8")
    result = CliRunner().invoke(
        app,
        ["writeback", "--dry-run", "--settings", str(path)],
        env={"KPISYNC_TEST_UNUSED_TOKEN": "pat-unused"},
    )
    assert result.exit_code == 2 and "writeback.s.account.nps_scor: unknown score" in result.output
