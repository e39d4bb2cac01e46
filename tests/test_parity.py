"""Parity: one seeded org synced from the HubSpot emulator and from the Salesforce emulator gives
the same canonical rows, vendor ids and raw payloads aside.

Rows are matched by natural keys (users and contacts by email, accounts and deals by name and
creation instant, activities by subject, answers by respondent and instant) and references are
compared through those keys. Vendor vocabularies are compared by meaning: a deal's stage by its
label and won/closed flags, an account's type by prospect/customer/former customer, custom fields
by their label. Left out, because one CRM does not carry them: HubSpot owners have no manager or
start date; a HubSpot converted lead keeps no company name or conversion date; a HubSpot email's
direction has no Salesforce Task equivalent; status picklists (lead, task) are vendor words; the
HubSpot connector reads no line items.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.hubspot.schema import snake_case
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator
from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    PipelineStage,
    RecordBase,
    SurveyResponse,
    User,
)
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import TOKEN, HubSpotEnv
from tests.salesforce_env import SalesforceEnv

Rows = dict[Any, tuple[Any, ...]]


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=21, deals=150)


def rows(engine: Engine, source: str, model: type[RecordBase]) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(model).where(col(model.source) == source, col(model.deleted_at).is_(None))
            ).mappings()
        )


def number(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value)).normalize()


def account_kind(value: str | None) -> str | None:
    lowered = (value or "").lower()
    return "former" if "former" in lowered else "customer" if "customer" in lowered else lowered


class View:
    """One source's canonical rows, keyed and cross-referenced by natural keys."""

    def __init__(self, engine: Engine, source: str, custom_names: set[str]) -> None:
        self.engine, self.source, self.names = engine, source, custom_names
        self.users = {r["external_id"]: r["email"] for r in rows(engine, source, User)}
        self.accounts = {
            r["external_id"]: (r["name"], r["created_at"]) for r in rows(engine, source, Account)
        }
        self.people = {r["external_id"]: r["email"] for r in rows(engine, source, Lead)}
        self.people.update({r["external_id"]: r["email"] for r in rows(engine, source, Contact)})
        self.deals = {
            r["external_id"]: (r["name"], r["created_at"]) for r in rows(engine, source, Deal)
        }
        stages = rows(engine, source, PipelineStage)
        self.stage_label = {r["stage"]: r["label"] for r in stages}

    def custom(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            plain = name.lower().removesuffix("__c")
            if plain in self.names and value not in (None, ""):
                out[plain] = str(number(value)) if _numeric(value) else value
        return out

    def keyed(
        self,
        model: type[RecordBase],
        key: Callable[[Any], Any],
        values: Callable[[Any], tuple[Any, ...]],
    ) -> Rows:
        found = [(key(r), values(r)) for r in rows(self.engine, self.source, model)]
        keyed = dict(found)
        assert len(keyed) == len(found), f"{model.__name__}: natural keys are not unique"
        return keyed

    def everything(self) -> dict[str, Rows]:
        u, a, p, d = self.users.get, self.accounts.get, self.people.get, self.deals.get
        return {
            "user": self.keyed(
                User,
                lambda r: r["email"],
                lambda r: (r["name"], r["team"], r["is_active"], r["created_at"]),
            ),
            "account": self.keyed(
                Account,
                lambda r: (r["name"], r["created_at"]),
                lambda r: (
                    u(r["owner_id"]),
                    account_kind(r["type"]),
                    r["industry"],
                    r["country"],
                    r["state"],
                    r["city"],
                    self.custom(r["custom"]),
                ),
            ),
            "contact": self.keyed(
                Contact,
                lambda r: r["email"],
                lambda r: (
                    r["first_name"],
                    r["last_name"],
                    r["phone"],
                    r["title"],
                    a(r["account_id"]),
                    u(r["owner_id"]),
                    r["lead_source"],
                    r["created_at"],
                    self.custom(r["custom"]),
                ),
            ),
            "lead": self.keyed(
                Lead,
                lambda r: r["email"],
                lambda r: (
                    r["first_name"],
                    r["last_name"],
                    r["phone"],
                    r["lead_source"],
                    u(r["owner_id"]),
                    r["created_at"],
                    r["is_converted"],
                    p(r["converted_contact_id"]),
                    a(r["converted_account_id"]),
                    self.custom(r["custom"]),
                ),
            ),
            "deal": self.keyed(
                Deal,
                lambda r: (r["name"], r["created_at"]),
                lambda r: (
                    a(r["account_id"]),
                    p(r["contact_id"]),
                    u(r["owner_id"]),
                    u(r["closed_owner_id"]),
                    self.stage_label.get(r["stage"]),
                    r["is_closed"],
                    r["is_won"],
                    number(r["amount"]),
                    r["currency"],
                    number(r["probability"]),
                    r["close_date"],
                    r["deal_type"],
                    r["loss_reason"],
                    r["competitor"],
                    number(r["margin"]),
                    self.custom(r["custom"]),
                ),
            ),
            "activity": self.keyed(
                Activity,
                lambda r: r["subject"],
                lambda r: (
                    r["kind"],
                    None if r["kind"] == "email" else r["direction"],
                    r["occurred_at"],
                    r["duration_seconds"],
                    u(r["owner_id"]),
                    p(r["contact_id"] or r["lead_id"]),
                    d(r["deal_id"]),
                    a(r["account_id"]),
                ),
            ),
            "survey_response": self.keyed(
                SurveyResponse,
                lambda r: (p(r["contact_id"]), r["answered_at"]),
                lambda r: (r["kind"], r["score"], a(r["account_id"])),
            ),
            "stage_history": self.stage_history(),
            "pipeline_stage": self.keyed(
                PipelineStage,
                lambda r: r["label"],
                lambda r: (number(r["probability"]), r["is_closed"], r["is_won"]),
            ),
        }

    def stage_history(self) -> Rows:
        history: dict[Any, list[tuple[Any, ...]]] = {}
        for r in rows(self.engine, self.source, DealStageChange):
            history.setdefault(self.deals.get(r["deal_id"]), []).append(
                (r["entered_at"], self.stage_label.get(r["stage"]))
            )
        return {deal: tuple(sorted(changes)) for deal, changes in history.items()}


def _numeric(value: Any) -> bool:
    try:
        Decimal(str(value))
    except ArithmeticError:
        return False
    return not isinstance(value, bool)


def test_hubspot_and_salesforce_give_the_same_canonical_rows(
    sqlite_engine: Engine, org: Org
) -> None:
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=40) as hubspot:
        hs = HubSpotEnv(org, hubspot).connector(search_rate_per_second=40)
        assert sync_source(sqlite_engine, "hs", hs, SyncOptions()).status == "succeeded"
    with SalesforceEmulator(org) as salesforce:
        sf = SalesforceEnv(org, salesforce).connector()
        assert sync_source(sqlite_engine, "sf", sf, SyncOptions()).status == "succeeded"
    names = {snake_case(f.label) for f in org.custom_fields}
    left = View(sqlite_engine, "hs", names).everything()
    right = View(sqlite_engine, "sf", names).everything()
    for entity in left:
        assert left[entity], f"no {entity} rows from HubSpot"
        assert left[entity].keys() == right[entity].keys(), (
            f"{entity}: only HubSpot {sorted(left[entity].keys() - right[entity].keys())[:3]}, "
            f"only Salesforce {sorted(right[entity].keys() - left[entity].keys())[:3]}"
        )
        wrong = [k for k in left[entity] if left[entity][k] != right[entity][k]]
        assert not wrong, (
            f"{entity}: {len(wrong)} of {len(left[entity])} differ, e.g. {wrong[0]}:"
            f"\n HubSpot    {left[entity][wrong[0]]}\n Salesforce {right[entity][wrong[0]]}"
        )
