"""A Persian survey export: Solar Hijri dates in Persian or Arabic-Indic digits import exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from kpisync.store.models import SurveyResponse, model_table
from metrics.survey_import import import_surveys
from tests.test_surveys_import import seed

ANSWERS = model_table(SurveyResponse)

EXPORT = """kind,score,answered_at,respondent,account,team
nps,۹,۱۴۰۳/۱۲/۳۰,cara@acme.test,,
nps,۷,۱۴۰۴/۰۱/۰۱,c2,,
enps,۸,١٤٠٣/٠٦/١٥,,,Alpha
nps,۶,۱۴۰۴/۱۲/۳۰,c2,,
nps,۵,2025-03-01,cara@acme.test,,
nps,۱۰,۱۴۰۵-۰۸-۱۵,c2,,
"""


def stored(engine: Engine) -> set[tuple[str, int, datetime, str | None, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ANSWERS.c.kind,
                ANSWERS.c.score,
                ANSWERS.c.answered_at,
                ANSWERS.c.contact_id,
                ANSWERS.c.team,
            )
        ).all()
    return {(r.kind, r.score, r.answered_at.astimezone(UTC), r.contact_id, r.team) for r in rows}


def tehran_midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=ZoneInfo("Asia/Tehran")).astimezone(UTC)


def test_a_persian_export_imports_its_good_rows_exactly(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    path = tmp_path / "export.csv"
    path.write_text(EXPORT, encoding="utf-8")
    report = import_surveys(engine, path, source="crm", timezone="Asia/Tehran", calendar="persian")
    assert [(e.line, e.reason) for e in report.errors] == [
        (5, "date '1404/12/30': '1404/12/30' is not a day of the Solar Hijri calendar")
    ]
    assert (report.imported, report.read_by_setting) == (5, 0)
    assert stored(engine) == {
        ("nps", 9, tehran_midnight(2025, 3, 20), "c1", None),  # 30 Esfand 1403 (a leap year)
        ("nps", 7, tehran_midnight(2025, 3, 21), "c2", None),  # Nowruz 1404
        ("enps", 8, tehran_midnight(2024, 9, 5), None, "Alpha"),  # 15 Shahrivar 1403
        ("nps", 5, tehran_midnight(2025, 3, 1), "c1", None),  # a Gregorian date stays one
        ("nps", 10, tehran_midnight(2026, 11, 6), "c2", None),  # 15 Aban 1405
    }


def test_a_gregorian_org_reads_solar_hijri_dates_when_a_column_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    path = tmp_path / "export.csv"
    path.write_text(
        "kind,score,answered_at,respondent,calendar\n"
        "nps,9,۱۴۰۳/۱۲/۳۰,cara@acme.test,jalali\n"
        "nps,8,۱۴۰۳/۱۲/۲۹,c2,\n",
        encoding="utf-8",
    )
    report = import_surveys(engine, path, source="crm", timezone="UTC")
    assert report.imported == 1
    assert [e.line for e in report.errors] == [3]
    assert "not plausible" in report.errors[0].reason
    assert stored(engine) == {("nps", 9, datetime(2025, 3, 20, tzinfo=UTC), "c1", None)}
