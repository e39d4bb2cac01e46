"""`kpisync discover --roles` against each CRM's emulator over loopback: the best field for every
role on the seeded org, and a pasted `roles = {...}` line that validates and syncs the right values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.config import load_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.store.models import Deal, User
from metrics.options import metric_config
from tests.harness import available_kits

NONE = (None, None)
EXPECTED: dict[str, dict[str, tuple[str | None, str | None]]] = {  # role -> (object, field)
    "hubspot": {
        "loss_reason": ("deals", "closed_lost_reason"),
        "competitor": ("deals", "competitor"),
        "deal_type": ("deals", "deal_category"),
        "margin": ("deals", "margin"),
        "account_region": ("companies", "country"),
        "user_start_date": NONE,
        "qualified_lead_statuses": ("contacts", "hs_lead_status"),
        "former_customer_types": ("companies", "type"),
        "required_stages": ("deals", "dealstage"),
    },
    "salesforce": {
        "loss_reason": ("Opportunity", "Loss_Reason__c"),
        "competitor": ("Opportunity", "Competitor__c"),
        "deal_type": ("Opportunity", "Deal_category__c"),
        "margin": ("Opportunity", "Margin__c"),
        "account_region": ("Account", "BillingCountry"),
        "user_start_date": ("User", "Start_Date__c"),
        "qualified_lead_statuses": ("Lead", "Status"),
        "former_customer_types": ("Account", "Type"),
        "required_stages": ("Opportunity", "StageName"),
    },
    "vtiger": {
        "loss_reason": ("Potentials", "cf_864"),
        "competitor": ("Potentials", "cf_855"),
        "deal_type": ("Potentials", "cf_858"),
        "margin": ("Potentials", "cf_856"),
        "account_region": ("Accounts", "bill_country"),
        "user_start_date": NONE,
        "qualified_lead_statuses": ("Leads", "leadstatus"),
        "former_customer_types": ("Accounts", "accounttype"),
        "required_stages": ("Potentials", "sales_stage"),
    },
}
# the best field's values that fit the role (Salesforce's emulator lists none for these)
VALUES: dict[str, dict[str, list[str]]] = {
    "hubspot": {
        "qualified_lead_statuses": ["OPEN_DEAL"],
        "former_customer_types": ["FORMER_CUSTOMER"],
    },
    "salesforce": {"qualified_lead_statuses": [], "former_customer_types": []},
    "vtiger": {
        "qualified_lead_statuses": ["Qualified"],
        "former_customer_types": ["Former Customer"],
    },
}
LINES = {  # the line printed for each kit's own settings
    "hubspot": 'roles = { deal_type = "deal_category", loss_reason = "closed_lost_reason", '
    'competitor = "competitor", margin = "margin" }',
    "salesforce": 'roles = { deal_type = "Deal_category__c", loss_reason = "Loss_Reason__c", '
    'competitor = "Competitor__c", margin = "Margin__c", '
    'user_start_date = "Start_Date__c" }',
    "vtiger": 'roles = { currency = "Currency", loss_reason = "Loss reason", '
    'competitor = "Competitor", margin = "Margin", deal_type = "Deal category" }',
}
PASTED = {  # roles after pasting the line printed for settings without any role of this page
    "hubspot": {
        "loss_reason": "closed_lost_reason",
        "competitor": "competitor",
        "deal_type": "deal_category",
        "margin": "margin",
    },
    "salesforce": {
        "loss_reason": "Loss_Reason__c",
        "competitor": "Competitor__c",
        "deal_type": "Deal_category__c",
        "margin": "Margin__c",
        "user_start_date": "Start_Date__c",
    },
    "vtiger": {
        "currency": "Currency",
        "loss_reason": "Loss reason",
        "competitor": "Competitor",
        "deal_type": "Deal category",
        "margin": "Margin",
    },
}
KITS = [kit for kit in available_kits() if kit.name in EXPECTED]
ROLE_KEYS = set(EXPECTED["hubspot"])


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=5, deals=40)


@pytest.fixture(params=KITS, ids=lambda kit: kit.name)
def crm(request: pytest.FixtureRequest, org: Org) -> Iterator[tuple[str, Any]]:
    """(kit name, its emulator serving the seeded org)."""
    with request.param.serve(org) as served:
        yield request.param.name, served


def kpisync(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "220"},
    )
    assert done.returncode == 0, done.stderr
    return done


def suggestions(settings: Path, source: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(
        kpisync("discover", source, "--roles", "--json", "--settings", str(settings)).stdout
    )
    return answer


def test_every_crm_kit_is_covered() -> None:
    assert sorted(kit.name for kit in KITS) == sorted(EXPECTED)


def test_best_candidate_per_role_on_the_seeded_org(crm: tuple[str, Any], tmp_path: Path) -> None:
    kit, served = crm
    answer = suggestions(
        served.settings_file(tmp_path, f"sqlite:///{tmp_path / 's.db'}"), served.source
    )
    best = {
        s["role"]: (s["candidates"][0]["entity"], s["candidates"][0]["name"])
        if s["candidates"]
        else NONE
        for s in answer["role_suggestions"]
    }
    assert best == EXPECTED[kit]
    by_role = {s["role"]: s for s in answer["role_suggestions"]}
    for role, values in VALUES[kit].items():
        assert by_role[role]["candidates"][0]["values"] == values
    configured = {
        role for role, s in by_role.items() if s["candidates"] and s["candidates"][0]["configured"]
    }
    assert configured == {
        role for role, (_, field) in EXPECTED[kit].items() if field is not None
    } - {"account_region"}  # no region set, none strong
    assert answer["roles_toml"] == LINES[kit]


def test_pasted_line_validates_and_syncs_the_role_values(
    crm: tuple[str, Any], tmp_path: Path
) -> None:
    kit, served = crm
    kept = {k: v for k, v in served.env.options()["roles"].items() if k not in ROLE_KEYS}
    store = f"sqlite:///{tmp_path / 'store.db'}"
    settings = served.settings_file(tmp_path, store, roles=kept)
    answer = suggestions(settings, served.source)
    text = settings.read_text(encoding="utf-8")
    pasted = re.sub(r"(?m)^roles = .*$", lambda _: answer["roles_toml"], text)
    assert pasted != text
    settings.write_text(pasted + "\n" + answer["metrics_roles_toml"] + "\n", encoding="utf-8")

    loaded = load_settings(settings)
    assert loaded.source(served.source).options["roles"] == PASTED[kit]
    assert tomllib.loads(pasted)["sources"][served.source]["roles"] == PASTED[kit]
    roles = metric_config(loaded).metrics.roles
    for role, values in VALUES[kit].items():
        assert {v.lower() for v in values} <= {v.lower() for v in getattr(roles, role)}
    build_connector(loaded.source(served.source)).check()
    again = suggestions(settings, served.source)  # now every pasted role names its best field
    assert all(
        s["candidates"][0]["configured"]
        for s in again["role_suggestions"]
        if s["candidates"] and s["role"] in PASTED[kit]
    )
    assert again["roles_toml"] == answer["roles_toml"]

    kpisync("sync", served.source, "--settings", str(settings))
    engine = open_store(store)
    try:
        with engine.connect() as connection:
            deals = connection.execute(
                select(
                    col(Deal.name),
                    col(Deal.deal_type),
                    col(Deal.loss_reason),
                    col(Deal.competitor),
                    col(Deal.margin),
                )
            ).all()
            starts = dict(connection.execute(select(col(User.email), col(User.started_on))).all())
    finally:
        engine.dispose()
    assert sorted(map(role_values, deals)) == sorted(
        role_values((d.name, d.deal_type, d.loss_reason, d.competitor, d.margin))
        for d in served.env.org.deals
    )
    if "user_start_date" in PASTED[kit]:
        assert starts == {r.email: r.started_on for r in served.env.org.reps}


def role_values(deal: Sequence[Any]) -> tuple[str, ...]:
    """A deal's name and role fields as comparable text; margin to the cent."""
    name, deal_type, loss_reason, competitor, margin = deal
    cents = f"{Decimal(margin):.2f}" if margin is not None else ""
    return name, deal_type or "", loss_reason or "", competitor or "", cents


def test_table_follows_the_field_list_and_a_missing_field_is_replaced(
    tmp_path: Path, org: Org
) -> None:
    kit = next(k for k in KITS if k.name == "hubspot")
    with kit.serve(org) as served:
        settings = served.settings_file(
            tmp_path,
            f"sqlite:///{tmp_path / 's.db'}",
            roles={"deal_type": "deal_category", "competitor": "rival_name"},
        )
        shown = kpisync("discover", served.source, "--settings", str(settings)).stdout
        full = json.loads(
            kpisync("discover", served.source, "--json", "--settings", str(settings)).stdout
        )
    assert shown.index("hs_lead_status") < shown.index("Suggested roles") < shown.index("roles = {")
    assert "rival_name (no such field)" in shown
    assert {f["name"] for f in full["fields"]} >= {"deal_category", "closed_lost_reason"}
    competitor = next(s for s in full["role_suggestions"] if s["role"] == "competitor")
    assert (competitor["current"], competitor["current_found"]) == ("rival_name", False)
    assert full["roles_toml"] == (
        'roles = { deal_type = "deal_category", competitor = "competitor", '
        'loss_reason = "closed_lost_reason", margin = "margin" }'
    )
