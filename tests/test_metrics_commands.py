"""The KPI commands through Typer: compute, kpis (table, JSON, CSV, history), goals, surveys import."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from kpisync.cli import app as cli_app
from kpisync.connector import Page
from kpisync.errors import ConfigError
from kpisync.store.database import open_store
from kpisync.store.models import Account, User
from kpisync.store.writer import write_page
from metrics.commands import emit
from metrics.declaration import KpiValue
from metrics.key_names import key_names


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """The kpisync app, which loads metrics.commands and wraps its commands in `friendly`."""
    monkeypatch.setattr("metrics.commands.console", Console(width=200))
    return cli_app


def write_settings(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(
        f"""
[kpisync]
store = "sqlite:///{tmp_path / "store.db"}"
timezone = "Europe/Warsaw"

[metrics]
history_years = 1

[sources.crm]
type = "hubspot"
token_env = "KPISYNC_TEST_UNUSED_TOKEN"

[[metrics.goals]]
name = "year revenue"
kpi = "sales_volume"
period = "year"
target = 100000
""",
        encoding="utf-8",
    )
    return path


def test_commands(app: typer.Typer, tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["compute", "--settings", str(settings)])
    assert result.exit_code == 0, result.output
    assert "computed" in result.output
    result = runner.invoke(
        app, ["kpis", "--kpi", "win_rate", "--grain", "org", "--json", "--settings", str(settings)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows and all(r["kpi"] == "win_rate" and r["value"] is None and r["reason"] for r in rows)
    assert all(datetime.fromisoformat(r["computed_at"]) for r in rows)
    result = runner.invoke(app, ["kpis", "--csv", "--settings", str(settings)])
    assert result.exit_code == 0 and result.output.startswith("computed_at,kpi,")
    assert all(row["computed_at"] for row in csv.DictReader(io.StringIO(result.output)))
    result = runner.invoke(
        app, ["kpis", "--kpi", "new_leads", "--history", "--json", "--settings", str(settings)]
    )
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["computed_at"] is not None for line in result.output.splitlines()} == {
        True
    }
    result = runner.invoke(app, ["goals", "--settings", str(settings)])
    assert result.exit_code == 0 and "year revenue" in result.output
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "kind,score,date,respondent\nnps,۹,2025-01-01,nobody@x.test\n", encoding="utf-8"
    )
    result = runner.invoke(
        app, ["surveys", "import", str(answers), "--source", "crm", "--settings", str(settings)]
    )
    assert result.exit_code == 7 and "line 2: unknown respondent" in result.output


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["kpis", "--kpi", "no_such_kpi"], "error: unknown KPI 'no_such_kpi'"),
        (["kpis", "--period", "fortnight"], "error: unknown period 'fortnight'"),
        (["kpis", "--grain", "planet"], "error: unknown grain 'planet'"),
        (["surveys", "import", "missing.csv", "--source", "crm"], "error: missing.csv not found"),
    ],
)
def test_bad_input_is_one_clear_line_through_the_real_cli(
    tmp_path: Path, arguments: list[str], says: str
) -> None:
    settings = write_settings(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *arguments, "--settings", str(settings)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert "Traceback" not in done.stderr and lines[0].startswith(says), done.stderr
    assert len(lines) == 2 and lines[1].startswith("  fix: "), done.stderr


def test_a_hint_naming_a_settings_table_keeps_its_brackets(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text[: text.index("[[metrics.goals]]")], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "kpisync.cli", "goals", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == ConfigError.exit_code
    assert done.stderr.splitlines() == [
        "error: no goals configured",
        "  fix: add [[metrics.goals]] entries to settings.toml",
    ]


def test_keys_from_the_crm_are_shown_as_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("metrics.commands.console", Console(width=200))
    value = KpiValue(
        "loss_to_competitor", "month", date(2026, 1, 1), "competitor", "rival [eu]", 0.25, 4, 0
    )
    emit([(None, value)], as_json=False, as_csv=False)
    assert "rival [eu]" in capsys.readouterr().out


def test_rep_and_account_keys_are_shown_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sales manager reads "Olivia Baker", not owner id 70000001; JSON and CSV keep both."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    page = Page(
        stream="s",
        records=[
            User.row(external_id="70000001", name="Olivia Baker"),
            Account.row(external_id="1001", name="شرکت نوآوران"),
        ],
    )
    with engine.begin() as connection:
        write_page(connection, "crm", page, datetime.now(UTC))
    values = [
        KpiValue("win_rate", "month", date(2026, 1, 1), "rep", "70000001", 0.5, 4, 0),
        KpiValue("win_rate", "month", date(2026, 1, 1), "rep", "70000002", 0.25, 4, 0),
        KpiValue("days_since_last_touch", "month", date(2026, 1, 1), "account", "1001", 3.0, 1, 0),
    ]
    names = key_names(engine, values)
    assert names == {("rep", "70000001"): "Olivia Baker", ("account", "1001"): "شرکت نوآوران"}
    monkeypatch.setattr("metrics.commands.console", Console(width=200))
    emit([(None, v) for v in values], as_json=False, as_csv=False, names=names)
    table = capsys.readouterr().out
    assert "Olivia Baker" in table and "70000002" in table and "شرکت نوآوران" in table
    emit([(None, values[0])], as_json=True, as_csv=False, names=names)
    record = json.loads(capsys.readouterr().out)
    assert (record["key"], record["name"]) == ("70000001", "Olivia Baker")
    engine.dispose()
