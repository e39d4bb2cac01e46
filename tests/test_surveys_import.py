"""Survey import: good rows once, bad rows reported by line, Persian digits, duplicates, idempotence."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from kpisync.errors import ConfigError
from kpisync.store.models import Account, Contact, SurveyResponse, User, model_table
from metrics.survey_import import ascii_digits, import_surveys

ANSWERS = model_table(SurveyResponse)

CSV = """kind,score,answered_at,respondent,account,team,comment
nps,۹,۱۴۰۳-01-01,cara@acme.test,,,persian digits in score and a bad year
nps,۹,2025-03-01,cara@acme.test,,,persian digits in the score
nps,١٠,2025-03-02T10:00:00+01:00,c2,,,arabic-indic digits
nps,11,2025-03-03,cara@acme.test,,,out of range
nps,7,,cara@acme.test,,,no date
nps,8,2025-03-04,nobody@x.test,,,unknown respondent
nps,6,2025-03-05,c3,,,contact without an account
nps,9,2025-03-01,CARA@acme.test,,,duplicate of line 3 (same respondent and time)
enps,9,2025-02-10,,,Alpha,by team
enps,9,2025-02-10,,,Alpha,a second identical answer is another employee
enps,5,2025-02-10,ben@example.com,,,team from the employee
enps,4,2025-02-10,,,Nowhere,unknown team
survey,4,2025-02-10,,,Alpha,unknown kind
nps,seven,2025-03-01,c2,,,not a number
nps,8,2025-03-06,,,,no respondent
enps,8,2025-03-06,,,,no team and no employee to take it from
"""


def seed(engine: Engine) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            model_table(User).insert(),
            [
                {
                    "source": "crm",
                    "external_id": "u1",
                    "email": "ana@example.com",
                    "team": "Alpha",
                    "custom": {},
                    "raw": {},
                    "is_active": True,
                    "created_at": at,
                },
                {
                    "source": "crm",
                    "external_id": "u2",
                    "email": "ben@example.com",
                    "team": "Beta",
                    "custom": {},
                    "raw": {},
                    "is_active": True,
                    "created_at": at,
                },
            ],
        )
        connection.execute(
            model_table(Account).insert(),
            [{"source": "crm", "external_id": "a1", "custom": {}, "raw": {}}],
        )
        connection.execute(
            model_table(Contact).insert(),
            [
                {
                    "source": "crm",
                    "external_id": "c1",
                    "email": "cara@acme.test",
                    "account_id": "a1",
                    "custom": {},
                    "raw": {},
                },
                {
                    "source": "crm",
                    "external_id": "c2",
                    "email": "dan@x.test",
                    "account_id": "a1",
                    "custom": {},
                    "raw": {},
                },
                {
                    "source": "crm",
                    "external_id": "c3",
                    "email": "eve@x.test",
                    "account_id": None,
                    "custom": {},
                    "raw": {},
                },
            ],
        )


def test_digits_become_ascii() -> None:
    assert ascii_digits("۰۱۲۳۴۵۶۷۸۹ ٠١٢٣٤٥٦٧٨٩") == "0123456789 0123456789"


def test_csv_imports_exactly_the_good_rows_once_and_reports_the_bad(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    path = tmp_path / "answers.csv"
    path.write_text(CSV, encoding="utf-8")
    report = import_surveys(engine, path, source="crm", timezone="Europe/Warsaw")
    assert report.imported == 5 and report.unchanged == 0 and report.duplicates == 1
    assert [(e.line, e.reason.split(" ")[0]) for e in report.errors] == [
        (2, "date"),
        (5, "score"),
        (6, "no"),
        (7, "unknown"),
        (8, "no"),
        (13, "unknown"),
        (14, "kind"),
        (15, "score"),
        (16, "no"),
        (17, "no"),
    ]
    assert "not plausible" in report.errors[0].reason
    assert report.errors[4].reason.startswith("no subject account: the contact has no account")
    assert report.errors[8].reason == "no respondent: an NPS answer needs its contact's email or id"
    assert report.errors[9].reason.startswith("no team: an eNPS answer needs a team column")
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ANSWERS.c.kind,
                ANSWERS.c.score,
                ANSWERS.c.contact_id,
                ANSWERS.c.account_id,
                ANSWERS.c.team,
                ANSWERS.c.raw,
                ANSWERS.c.answered_at,
            ).order_by(ANSWERS.c.kind, ANSWERS.c.score)
        ).all()
    assert [(r.kind, r.score, r.contact_id, r.account_id, r.team) for r in rows] == [
        ("enps", 5, None, None, "Beta"),
        ("enps", 9, None, None, "Alpha"),
        ("enps", 9, None, None, "Alpha"),
        ("nps", 9, "c1", "a1", None),
        ("nps", 10, "c2", "a1", None),
    ]
    assert all(r.raw == {} for r in rows if r.kind == "enps")  # no employee identity kept
    nps_nine = next(r for r in rows if r.kind == "nps" and r.score == 9)
    assert nps_nine.answered_at == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)  # local midnight

    again = import_surveys(engine, path, source="crm", timezone="Europe/Warsaw")
    assert (again.imported, again.unchanged, len(again.errors)) == (0, 5, 10)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ANSWERS)).scalar() == 5


def test_json_export_with_response_ids(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    path = tmp_path / "answers.json"
    path.write_text(
        json.dumps(
            {
                "responses": [
                    {
                        "id": "r1",
                        "kind": "nps",
                        "score": "۱۰",
                        "date": "2025-03-01",
                        "email": "dan@x.test",
                    },
                    {
                        "id": "r1",
                        "kind": "nps",
                        "score": "10",
                        "date": "2025-03-01",
                        "email": "dan@x.test",
                    },
                    {
                        "id": "r2",
                        "kind": "nps",
                        "score": "-1",
                        "date": "2025-03-01",
                        "email": "dan@x.test",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    report = import_surveys(engine, path, source="crm")
    assert (report.imported, report.duplicates) == (1, 1)
    assert [(e.line, e.reason) for e in report.errors] == [(3, "score '-1' is out of range 0–10")]


def test_a_semicolon_separated_export_imports_like_a_comma_separated_one(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    path = tmp_path / "answers.csv"
    path.write_text(
        "Score;Date;Email\n۹;2025-03-01;cara@acme.test\n3;2025-03-02;c2\n", encoding="utf-8"
    )
    report = import_surveys(engine, path, source="crm", timezone="UTC")
    assert (report.imported, report.errors) == (2, [])
    with engine.connect() as connection:
        stored = connection.execute(select(ANSWERS.c.contact_id, ANSWERS.c.score)).all()
    assert sorted(tuple(row) for row in stored) == [("c1", 9), ("c2", 3)]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"# settings\n[kpisync]\nstore = 'x'\n", "no score or answered_at column"),
        (b"score,respondent\n9,c2\n", "no answered_at column (columns found: respondent, score)"),
        ("score,date\n9,2025-03-01\n".encode("utf-16"), "is not UTF-8 text"),
        (b'{"answers": [{"score": 9}]}', "no list of answers"),
    ],
)
def test_a_file_that_is_no_survey_export_is_refused_whole(
    engine: Engine, tmp_path: Path, content: bytes, says: str
) -> None:
    seed(engine)
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(says)):
        import_surveys(engine, path, source="crm")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ANSWERS)).scalar_one() == 0
