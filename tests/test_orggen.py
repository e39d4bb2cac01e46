"""Tests of the synthetic org generator: determinism, proportions and invariants."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from emulators.org.generate import generate_org
from emulators.org.model import Org

NOW = datetime(2026, 10, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def org() -> Org:
    """The default 1,000-deal org."""
    return generate_org(seed=7, deals=1000)


def all_instants(org: Org) -> list[datetime]:
    """Every datetime in the org."""
    out: list[datetime] = [r.created_at for r in org.reps]
    for rows in (org.accounts, org.contacts, org.leads, org.activities):
        for row in rows:
            out += [row.created_at, row.modified_at]
    for deal in org.deals:
        out += [deal.created_at, deal.modified_at]
        out += [c.at for c in deal.stage_history] + [c.at for c in deal.owner_history]
    out += [lead.converted_at for lead in org.leads if lead.converted_at]
    out += [a.occurred_at for a in org.activities]
    out += [s.answered_at for s in org.survey_answers]
    return out


def test_same_seed_same_org_different_seed_different() -> None:
    assert generate_org(seed=3, deals=200) == generate_org(seed=3, deals=200)
    assert generate_org(seed=3, deals=200) != generate_org(seed=4, deals=200)


def test_proportions(org: Org) -> None:
    assert len(org.deals) == 1000
    assert len(org.reps) == 10
    assert len(org.accounts) == 300
    assert len(org.contacts) == 1500
    assert len(org.leads) == 2000
    assert len(org.activities) == 8000
    teams = {r.team for r in org.reps}
    assert 2 <= len(teams) <= 3
    assert len({r.region for r in org.reps}) >= 2
    converted = sum(1 for lead in org.leads if lead.status == "converted")
    assert 0.2 < converted / len(org.leads) < 0.4
    assert sum(1 for d in org.deals if d.amount is None) < 60
    assert {d.currency for d in org.deals} == {"USD", "EUR", "GBP", "PLN"}
    assert {a.type for a in org.accounts} == {"prospect", "customer", "former_customer"}
    assert {d.deal_type for d in org.deals} == {"new", "upgrade", "cross_sell", "renewal"}
    assert Counter(a.kind for a in org.activities).keys() == {"call", "email", "meeting", "task"}
    assert any(d.close_date.toordinal() - NOW.date().toordinal() > 0 for d in org.deals)


def test_expansions_are_sold_to_customers_who_bought_before(org: Org) -> None:
    """Upgrades, cross-sells and renewals go to accounts with a won deal closed earlier, so the
    upsell and cross-sell rates of a generated org are not zero by construction."""
    expansions = [d for d in org.deals if d.deal_type != "new"]
    assert len(expansions) > 50
    for deal in expansions:
        assert any(
            other.account_id == deal.account_id
            and other.stage == "closed_won"
            and other.close_date < deal.created_at.date()
            for other in org.deals
        ), deal.id
    won_upgrades = [d for d in expansions if d.deal_type == "upgrade" and d.stage == "closed_won"]
    assert len(won_upgrades) >= 5


def test_reps_teams_and_hiring(org: Org) -> None:
    managers = {r.id for r in org.reps if r.manager_id is None}
    assert len(managers) == len({r.team for r in org.reps})
    for rep in org.reps:
        if rep.manager_id is not None:
            boss = next(r for r in org.reps if r.id == rep.manager_id)
            assert boss.manager_id is None and boss.team == rep.team
    recent = [r for r in org.reps if (NOW.date() - r.started_on).days < 120]
    assert 1 <= len(recent) <= 2
    assert (NOW.date() - min(r.started_on for r in org.reps)).days > 3 * 365


def test_win_rates_spread(org: Org) -> None:
    won: Counter[int] = Counter()
    closed: Counter[int] = Counter()
    for d in org.deals:
        if d.stage in ("closed_won", "closed_lost"):
            closed[d.owner_id] += 1
            won[d.owner_id] += d.stage == "closed_won"
    rates = [won[r] / closed[r] for r in closed if closed[r] >= 40]
    assert min(rates) < 0.3 and max(rates) > 0.35
    assert all(0.05 < rate < 0.75 for rate in rates)  # configured 15%..50%, plus sampling noise


def test_deal_invariants(org: Org) -> None:
    stage_keys = {s.key for s in org.stages}
    for d in org.deals:
        assert d.stage_history[-1].stage == d.stage and d.stage in stage_keys
        assert d.stage_history[0].at == d.created_at
        times = [c.at for c in d.stage_history]
        assert times == sorted(times)
        assert d.owner_history[-1].owner_id == d.owner_id
        assert d.modified_at >= d.created_at
        if d.stage in ("closed_won", "closed_lost"):
            assert d.close_date <= NOW.date()
        else:
            assert d.close_date > NOW.date()
        assert (d.loss_reason is not None) == (d.stage == "closed_lost")
        if d.amount is not None:
            assert d.amount == d.amount.quantize(d.amount.__class__("0.01"))
            assert sum(i.unit_price * i.quantity for i in d.line_items) == d.amount
        assert d.custom["Deal category"] == d.deal_type


def test_converted_leads_match_their_contacts(org: Org) -> None:
    contacts = {c.id: c for c in org.contacts}
    converted = [lead for lead in org.leads if lead.status == "converted"]
    assert converted
    for lead in converted:
        assert lead.converted_contact_id is not None
        contact = contacts[lead.converted_contact_id]
        assert (contact.first_name, contact.last_name, contact.email, contact.phone) == (
            lead.first_name,
            lead.last_name,
            lead.email,
            lead.phone,
        )
        assert contact.created_at == lead.created_at
        assert contact.account_id == lead.converted_account_id is not None
        assert lead.converted_at is not None and lead.converted_at >= lead.created_at
    assert any(lead.converted_deal_id for lead in converted)


def test_instants_utc_ms_before_now_and_modified_after_created(org: Org) -> None:
    for instant in all_instants(org):
        assert instant.utcoffset() == timedelta(0)
        assert instant.microsecond % 1000 == 0
        assert instant < NOW
    for rows in (org.accounts, org.contacts, org.leads, org.activities):
        assert all(r.modified_at >= r.created_at for r in rows)


def test_surveys_and_names(org: Org) -> None:
    nps = [s for s in org.survey_answers if s.kind == "nps"]
    customers = {a.id for a in org.accounts if a.type != "prospect"}
    answered = {s.account_id for s in nps}
    assert answered <= customers and 0.25 < len(answered) / len(customers) < 0.55
    contacts = {c.id: c for c in org.contacts}
    assert all(
        s.respondent_contact_id is not None
        and contacts[s.respondent_contact_id].account_id == s.account_id
        for s in nps
    )
    enps = Counter(
        (s.team, s.answered_at.date().replace(day=1))
        for s in org.survey_answers
        if s.kind == "enps"
    )
    per_team: Counter[str | None] = Counter()
    for (team, _), count in enps.items():
        per_team[team] = max(per_team[team], count)
    assert min(per_team.values()) < 5 <= max(per_team.values())
    names = " ".join(f"{c.first_name} {c.last_name}" for c in org.contacts)
    companies = " ".join(a.name for a in org.accounts)
    text = names + " " + companies
    assert re.search("[\u0400-\u04ff]", text)  # Russian
    assert re.search("[\u0600-\u06ff]", text)  # Persian
    assert re.search("[łśżźćńąęó]", text, re.IGNORECASE)  # Polish
    assert "ООО Ромашка" in companies or "شرکت نوآوران" in companies
    assert any(f.label == "Segment" and f.type == "enumeration" for f in org.custom_fields)
    assert all(a.custom["Segment"] in ("SMB", "Mid-Market", "Enterprise") for a in org.accounts)


def test_small_org_still_makes_sense() -> None:
    tiny = generate_org(seed=1, deals=10)
    assert len(tiny.reps) >= 4 and len({r.team for r in tiny.reps}) >= 2
    assert len(tiny.deals) == 10 and tiny.accounts and tiny.contacts
