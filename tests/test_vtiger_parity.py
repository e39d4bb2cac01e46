"""Parity: the same seeded org synced through HubSpot and through Vtiger gives the same canonical rows.

Rows are matched by natural keys (emails, names with creation second, activity subjects), since
each CRM has its own ids; custom values are compared by field label; stages by the org's stage.
What Vtiger cannot carry is left out and said so: converted leads (Vtiger hides them: they are
deletes), call direction, activity status wording, lead status wording.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.hubspot.schema import stage_id
from emulators.org.generate import generate_org
from emulators.vtiger.emulator import VtigerEmulator
from emulators.vtiger.schema import STAGE_LABELS
from kpisync.store.models import Account, Activity, Contact, Deal, Lead, User
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import TOKEN, HubSpotEnv
from tests.vtiger_env import VtigerEnv


def second(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.normalize()


class Side:
    """One source's canonical rows, with its ids turned into natural keys."""

    def __init__(
        self,
        engine: Engine,
        source: str,
        labels: dict[str, str],
        stage_key: Callable[[str | None], str | None],
    ) -> None:
        self.labels = labels
        with Session(engine) as session:

            def rows(model: Any) -> list[Any]:
                return [
                    (x,)
                    for x in session.scalars(
                        select(model).where(model.source == source, model.deleted_at.is_(None))
                    )
                ]

            self.users = {u.external_id: u.email for (u,) in rows(User)}
            self.accounts = {
                a.external_id: (a.name, second(a.created_at)) for (a,) in rows(Account)
            }
            self.account_rows = [a for (a,) in rows(Account)]
            self.contact_rows = [x for (x,) in rows(Contact)]
            self.lead_rows = [x for (x,) in rows(Lead)]
            self.deal_rows = [x for (x,) in rows(Deal)]
            self.deals = {d.external_id: (d.name, second(d.created_at)) for d in self.deal_rows}
            self.activity_rows = [x for (x,) in rows(Activity)]
            self.user_rows = [x for (x,) in rows(User)]
        self.stage_key = stage_key

    def custom(self, values: dict[str, Any]) -> dict[str, Any]:
        return {self.labels.get(k, k): v for k, v in values.items() if v not in (None, "")}

    def table(self, entity: str) -> dict[Any, tuple[Any, ...]]:
        u = self.users.get
        if entity == "user":
            return {
                x.email: (x.name, x.team, x.is_active)
                for x in self.user_rows
                if x.email and "kpisync-demo" in x.email and not x.email.startswith("admin@")
            }
        if entity == "account":
            return {
                (a.name, second(a.created_at)): (
                    a.industry,
                    a.country,
                    a.state,
                    a.city,
                    u(a.owner_id or ""),
                    (a.type or "").lower().replace("_", " "),
                    self.custom(a.custom),
                )
                for a in self.account_rows
            }
        if entity == "contact":
            return {
                c.email: (
                    c.first_name,
                    c.last_name,
                    self.accounts.get(c.account_id or ""),
                    u(c.owner_id or ""),
                    self.custom(c.custom),
                )
                for c in self.contact_rows
            }
        if entity == "lead":
            return {
                x.email: (
                    x.first_name,
                    x.last_name,
                    x.company,
                    u(x.owner_id or ""),
                    x.lead_source,
                    second(x.created_at),
                )
                for x in self.lead_rows
                if not x.is_converted
            }
        if entity == "deal":
            return {
                (d.name, second(d.created_at)): (
                    money(d.amount),
                    d.currency,
                    d.close_date,
                    u(d.owner_id or ""),
                    self.accounts.get(d.account_id or ""),
                    d.is_closed,
                    d.is_won,
                    self.stage_key(d.stage),
                    money(d.probability),
                    d.deal_type,
                    d.loss_reason,
                    d.competitor,
                    money(d.margin),
                )
                for d in self.deal_rows
            }
        return {
            x.subject: (
                x.kind,
                u(x.owner_id or ""),
                second(x.occurred_at),
                self.deals.get(x.deal_id or ""),
            )
            for x in self.activity_rows
        }


def labels_of(connector: Any) -> dict[str, str]:
    return {f.name: f.label for f in connector.discover() if f.is_custom}


def test_same_org_same_canonical_rows(sqlite_engine: Engine) -> None:
    org = generate_org(seed=21, deals=60)
    with HubSpotEmulator(org, access_token=TOKEN) as hubspot, VtigerEmulator(org) as vtiger:
        hubspot.search_rate_per_second = 50
        hs = HubSpotEnv(org, hubspot).connector(search_rate_per_second=50)
        vt = VtigerEnv(org, vtiger).connector()
        assert sync_source(sqlite_engine, "hs", hs, SyncOptions()).status == "succeeded"
        assert sync_source(sqlite_engine, "vt", vt, SyncOptions()).status == "succeeded"
        by_hubspot = {stage_id(s.key): s.key for s in org.stages}
        by_vtiger = {label: key for key, label in STAGE_LABELS.items()}
        left = Side(sqlite_engine, "hs", labels_of(hs), lambda s: by_hubspot.get(s or ""))
        right = Side(sqlite_engine, "vt", labels_of(vt), lambda s: by_vtiger.get(s or ""))
    for entity in ("user", "account", "contact", "lead", "deal", "activity"):
        a, b = left.table(entity), right.table(entity)
        assert a.keys() == b.keys(), (
            f"{entity}: keys differ, e.g. {sorted(a.keys() ^ b.keys(), key=str)[:3]}"
        )
        wrong = [k for k in a if a[k] != b[k]]
        assert not wrong, (
            f"{entity}: {len(wrong)} differ, e.g. {wrong[0]}: {a[wrong[0]]} != {b[wrong[0]]}"
        )
        assert a, f"{entity}: nothing compared"
