"""settings.toml validation: every problem named by its key, secrets refused, the example valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpisync.config import load_settings, parse_settings
from kpisync.errors import ConfigError
from kpisync.registry import build_connector
from kpisync.settings_check import check_settings
from kpisync.starter import STARTER_SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_repository_example_is_the_starter_file_and_valid() -> None:
    example = (ROOT / "settings.toml").read_text(encoding="utf-8")
    assert example == STARTER_SETTINGS
    settings = load_settings(ROOT / "settings.toml")
    assert settings.sources["hubspot_main"].type == "hubspot"
    assert settings.core.timezone == "Europe/Warsaw"


def test_literal_token_is_refused_with_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"sources": {"hs": {"type": "hubspot", "token": "pat-na1-abc"}}})
    assert "sources.hs.token" in caught.value.message
    assert 'token_env = "VARIABLE_NAME"' in (caught.value.hint or "")
    assert "pat-na1-abc" not in str(caught.value)


def test_unknown_key_and_bad_zone_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"kpisync": {"timezone": "Mars/Olympus", "stoer": "x"}})
    message = caught.value.message
    assert "kpisync.timezone" in message and "Mars/Olympus" in message
    assert "kpisync.stoer: unknown key" in message


def test_connector_options_are_validated_with_their_path() -> None:
    settings = parse_settings(
        {"sources": {"hs": {"type": "hubspot", "token_env": "X", "client_id": "abc"}}}
    )
    with pytest.raises(ConfigError) as caught:
        build_connector(settings.source("hs"))
    assert caught.value.message.startswith("sources.hs:")


def test_missing_environment_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPISYNC_TEST_ABSENT", raising=False)
    settings = parse_settings(
        {"sources": {"hs": {"type": "hubspot", "token_env": "KPISYNC_TEST_ABSENT"}}}
    )
    with pytest.raises(ConfigError) as caught:
        build_connector(settings.source("hs"))
    assert "KPISYNC_TEST_ABSENT" in caught.value.message


def test_unknown_connector_type_lists_installed_ones() -> None:
    settings = parse_settings({"sources": {"x": {"type": "dynamics"}}})
    with pytest.raises(ConfigError) as caught:
        build_connector(settings.source("x"))
    assert "hubspot" in (caught.value.hint or "")


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[kpisync\nstore = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "line 1" in caught.value.message


HUBSPOT = {
    "kpisync": {"store": "sqlite:///k.db"},
    "sources": {"hs": {"type": "hubspot", "token_env": "HUBSPOT_TOKEN"}},
}


@pytest.mark.parametrize(
    ("tables", "says"),
    [
        ({"metric": {"history_years": 2}}, "[metric]: unknown table; did you mean 'metrics'?"),
        (
            {"metrics": {"goals": [{"name": "g", "kpi": "win_rat", "target": 0.5}]}},
            "metrics.goals[0] (g).kpi: unknown KPI 'win_rat'; did you mean 'win_rate'?",
        ),
        (
            {
                "metrics": {
                    "alerts": [{"name": "a", "kpi": "win_rate", "grain": "account", "below": 0.2}]
                }
            },
            "metrics.alerts[0] (a).grain: win_rate has no grain 'account'",
        ),
        (
            {"writeback": {"hs": {"account": {"nps_scor": "kpisync_nps_score"}}}},
            "writeback.hs.account.nps_scor: unknown score",
        ),
        (
            {"writeback": {"hubspot": {"account": {"nps_score": "kpisync_nps_score"}}}},
            "writeback.hubspot: no source named 'hubspot'",
        ),
        ({"report": {"period": "fortnight"}}, "report.period"),
        ({"scheduler": {"stages": ["sync", "dance"]}}, "scheduler.stages"),
        (
            {
                "sources": {
                    "hs": {
                        "type": "hubspot",
                        "token_env": "HUBSPOT_TOKEN",
                        "schedule": {"cron": "61 * * * *"},
                    }
                }
            },
            "sources.hs.schedule.cron: '61 * * * *' is not a crontab line",
        ),
        (
            {
                "sources": {
                    "vt": {
                        "type": "vtiger",
                        "url": "https://crm.example.com",
                        "access_key_env": "VTIGER_KEY",
                    }
                },
                "budgets": {"crm": {"sources": ["vt"], "daily_share": 0.5}},
            },
            "budgets.crm.daily_allowance: not set, and vt (vtiger) does not report the org's daily "
            "limit",
        ),
        (
            {
                "sources": {
                    "hs": {
                        "type": "hubspot",
                        "client_id": "abc",
                        "client_secret_env": "S",
                        "refresh_token_env": "R",
                    }
                },
                "budgets": {"portal": {"sources": ["hs"]}},
            },
            "budgets.portal.daily_allowance: not set, and hs (hubspot) does not report",
        ),
        # a source's own options, though the command builds no connector (kpis, status, run)
        (
            {
                "sources": {
                    "hs": {"type": "hubspot", "token_env": "HUBSPOT_TOKEN", "search_lag_second": 10}
                }
            },
            "sources.hs.search_lag_second: unknown key",
        ),
        (
            {
                "sources": {
                    "sf": {
                        "type": "salesforce",
                        "username": "a@b.c",
                        "password_env": "P",
                        "security_token_env": "T",
                        "min_api_remaning": 5000,
                    }
                }
            },
            "sources.sf.min_api_remaning: unknown key",
        ),
        (
            {
                "sources": {
                    "vt": {
                        "type": "vtiger",
                        "url": "https://crm.example.com",
                        "username": "admin",
                        "access_key_env": "K",
                        "batch_records": 0,
                    }
                }
            },
            "sources.vt.batch_records: Input should be greater than or equal to 1",
        ),
        (
            {"sources": {"x": {"type": "dynamics"}}},
            "sources.x.type: unknown connector type 'dynamics'",
        ),
    ],
)
def test_every_table_is_checked_when_a_command_starts(tables: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_settings(parse_settings({**HUBSPOT, **tables}))
    assert says in caught.value.message


def test_the_example_settings_pass_the_whole_check() -> None:
    check_settings(load_settings(ROOT / "settings.toml"))


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (
            {"type": "vtiger", "url": "crm.example.com", "access_key_env": "X"},
            "sources.s.url: 'crm.example.com' is not a web address",
        ),
        (
            {"type": "hubspot", "token_env": "X", "host": "api.hubapi.com"},
            "sources.s.host: 'api.hubapi.com' is not a web address",
        ),
        (
            {
                "type": "salesforce",
                "username": "a@b.c",
                "password_env": "X",
                "security_token_env": "X",
                "login_url": "ftp://login.salesforce.com",
            },
            "sources.s.login_url: 'ftp://login.salesforce.com' is not a web address",
        ),
        (
            {
                "type": "salesforce",
                "username": "a@b.c",
                "password_env": "X",
                "security_token_env": "X",
                "api_version": "v59",
            },
            "sources.s.api_version: 'v59' is not an API version such as '59.0'",
        ),
        (
            {
                "type": "salesforce",
                "username": "a@b.c",
                "client_id": "app",
                "private_key_file": "/nonexistent/key.pem",
            },
            "sources.s.private_key_file: /nonexistent/key.pem is not a file",
        ),
    ],
)
def test_addresses_versions_and_files_are_checked_before_any_call(
    monkeypatch: pytest.MonkeyPatch, source: dict[str, str], says: str
) -> None:
    monkeypatch.setenv("X", "secret-value")
    with pytest.raises(ConfigError) as caught:
        build_connector(parse_settings({"sources": {"s": source}}).source("s"))
    assert says in caught.value.message


def test_a_budget_may_leave_the_limit_to_a_crm_that_reports_it() -> None:
    check_settings(
        parse_settings({**HUBSPOT, "budgets": {"portal": {"sources": ["hs"], "daily_share": 0.5}}})
    )
