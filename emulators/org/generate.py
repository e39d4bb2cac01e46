"""Deterministic generator of the synthetic sales org served by every emulator.

`generate_org(seed, deals)` returns an `Org` whose every value comes from one `random.Random(seed)`
(never the global generator, never the wall clock), so the same seed and sizes give the same org.
Sizes scale with `deals` (per 1,000 deals: ~10 reps, 300 accounts, 1,500 contacts, 2,000 leads,
8,000 activities); the `*_per_deal` keywords let a benchmark shrink the side entities.
Instants are integer epoch milliseconds inside the generator and UTC datetimes in the result.
Margins are fractions of the amount (Decimal("0.42") means 42%).
"""

from __future__ import annotations

import gc
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from emulators.org.model import (
    Account,
    Activity,
    Contact,
    CustomFieldDef,
    Deal,
    Lead,
    LineItem,
    Org,
    OwnerChange,
    Rep,
    Stage,
    StageChange,
    SurveyAnswer,
)
from emulators.org.vocabulary import (
    INDUSTRIES,
    LANG_PICK,
    PLACES,
    REGIONS,
    SOURCES,
    TEAM_WORDS,
    TITLES,
    Weighted,
    below,
    company_name,
    dt_to_ms,
    ms_to_dt,
    phone,
    pick,
    pick_person,
)

T = TypeVar("T")
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
STAGES: list[Stage] = [
    Stage("appointment_scheduled", "Appointment Scheduled", 0, Decimal("0.2"), False, False),
    Stage("qualified_to_buy", "Qualified To Buy", 1, Decimal("0.4"), False, False),
    Stage("presentation_scheduled", "Presentation Scheduled", 2, Decimal("0.6"), False, False),
    Stage("decision_maker_bought_in", "Decision Maker Bought-In", 3, Decimal("0.8"), False, False),
    Stage("contract_sent", "Contract Sent", 4, Decimal("0.9"), False, False),
    Stage("closed_won", "Closed Won", 5, Decimal("1.0"), True, True),
    Stage("closed_lost", "Closed Lost", 6, Decimal("0.0"), True, False),
]
OPEN_KEYS = [s.key for s in STAGES if not s.is_closed]
CURRENCIES = {
    "USD": Decimal(1),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "PLN": Decimal("0.25"),
}
CURRENCY_WEIGHTS = (55, 20, 15, 10)
PRODUCTS = {
    "Core": 9000.0,
    "Analytics": 4000.0,
    "Support": 1500.0,
    "Onboarding": 2500.0,
    "Integrations": 3000.0,
}
LOSS_REASONS = ("No decision", "Price", "Competitor", "Timing", "Missing feature", "Budget")
LOSS_WEIGHTS = (30, 22, 20, 14, 8, 6)
COMPETITORS = ("Initech CRM", "Hooli Sales", "Umbrella Suite", "Vandelay Cloud")
SEGMENT_FACTOR = {"SMB": 1.0, "Mid-Market": 3.0, "Enterprise": 9.0}
TYPE_FACTOR = {"new": 1.0, "upgrade": 0.5, "cross_sell": 0.4, "renewal": 0.8}
# Relative deal volume by calendar month: quarter ends busy, August and late December quiet.
MONTH_WEIGHT = (0.8, 0.9, 1.3, 0.9, 1.0, 1.3, 0.8, 0.6, 1.3, 1.0, 1.1, 1.2)
CUSTOM_FIELDS = [
    CustomFieldDef("account", "Segment", "enumeration", ("SMB", "Mid-Market", "Enterprise")),
    CustomFieldDef("deal", "Competitor", "string"),
    CustomFieldDef("deal", "Margin", "number"),
    CustomFieldDef(
        "deal", "Deal category", "enumeration", ("new", "upgrade", "cross_sell", "renewal")
    ),
    CustomFieldDef(
        "contact", "Preferred language", "enumeration", ("English", "Persian", "Russian", "Polish")
    ),
    CustomFieldDef(
        "lead", "Preferred language", "enumeration", ("English", "Persian", "Russian", "Polish")
    ),
]


@dataclass(frozen=True)
class OrgSize:
    """How many records of each kind one org gets."""

    reps: int
    accounts: int
    contacts: int
    leads: int
    deals: int
    activities: int


def plan_size(
    deals: int,
    *,
    reps_per_deal: float = 0.01,
    accounts_per_deal: float = 0.3,
    contacts_per_deal: float = 1.5,
    leads_per_deal: float = 2.0,
    activities_per_deal: float = 8.0,
) -> OrgSize:
    """Scale every entity with the deal count, with floors so tiny orgs still make sense."""
    return OrgSize(
        reps=max(4, round(deals * reps_per_deal)),
        accounts=max(8, round(deals * accounts_per_deal)),
        contacts=max(10, round(deals * contacts_per_deal)),
        leads=max(10, round(deals * leads_per_deal)),
        deals=max(1, deals),
        activities=max(20, round(deals * activities_per_deal)),
    )


def generate_org(
    seed: int = 7,
    deals: int = 1000,
    now: datetime = datetime(2026, 10, 31, tzinfo=UTC),
    *,
    reps_per_deal: float = 0.01,
    accounts_per_deal: float = 0.3,
    contacts_per_deal: float = 1.5,
    leads_per_deal: float = 2.0,
    activities_per_deal: float = 8.0,
) -> Org:
    """Build one deterministic org of about `deals` deals ending just before `now`."""
    size = plan_size(
        deals,
        reps_per_deal=reps_per_deal,
        accounts_per_deal=accounts_per_deal,
        contacts_per_deal=contacts_per_deal,
        leads_per_deal=leads_per_deal,
        activities_per_deal=activities_per_deal,
    )
    collecting = gc.isenabled()
    gc.disable()  # millions of young objects, none cyclic: collection passes only cost time
    try:
        return build_org(random.Random(seed), seed, size, now)
    finally:
        if collecting:
            gc.enable()


def build_org(rng: random.Random, seed: int, size: OrgSize, now: datetime) -> Org:
    """Generate every entity in dependency order from one random stream."""
    now_ms = dt_to_ms(now)
    start_ms = now_ms - 3 * 365 * DAY_MS
    reps = build_reps(rng, size.reps, now_ms)
    accounts = build_accounts(rng, size.accounts, reps, start_ms, now_ms)
    leads = build_leads(rng, size.leads, reps, accounts, start_ms, now_ms)
    contacts = build_contacts(rng, size.contacts, accounts, leads, reps, now_ms)
    deal_list = build_deals(rng, size.deals, reps, accounts, contacts, leads, start_ms, now_ms)
    fix_account_types(rng, accounts, deal_list)
    activities = build_activities(
        rng, size.activities, leads, contacts, deal_list, accounts, now_ms
    )
    answers = build_survey_answers(rng, accounts, contacts, reps, now_ms)
    return Org(
        seed=seed,
        now=now,
        stages=list(STAGES),
        reps=reps,
        accounts=accounts,
        contacts=contacts,
        leads=leads,
        deals=deal_list,
        activities=activities,
        survey_answers=answers,
        custom_fields=list(CUSTOM_FIELDS),
        currencies=dict(CURRENCIES),
    )


def seasonal_times(rng: random.Random, n: int, start_ms: int, now_ms: int) -> list[int]:
    """Draw `n` instants in [start, now) with monthly seasonality and mild growth, sorted."""
    months = max(1, (now_ms - start_ms) // (30 * DAY_MS))
    span = (now_ms - start_ms) / months
    weights = []
    for m in range(months):
        month = ms_to_dt(int(start_ms + m * span)).month
        weights.append(MONTH_WEIGHT[month - 1] * (1.0 + 0.5 * m / months))
    picks = rng.choices(range(months), weights=weights, k=n)
    times = [int(start_ms + (m + rng.random()) * span) for m in picks]
    times.sort()
    return [min(t, now_ms - DAY_MS) for t in times]


def eligible(times: list[int], at_ms: int) -> int:
    """How many entries of a sorted creation-time list exist at `at_ms` (at least 1)."""
    return max(1, bisect_right(times, at_ms))


def build_deals(
    rng: random.Random,
    n: int,
    reps: list[Rep],
    accounts: list[Account],
    contacts: list[Contact],
    leads: list[Lead],
    start_ms: int,
    now_ms: int,
) -> list[Deal]:
    """Deals over about three years; some born from converted leads, expansions on customers."""
    roster = Roster(reps)
    win_rate = spread_win_rates(rng, reps)
    acc_times = [dt_to_ms(a.created_at) for a in accounts]
    by_account: dict[int, list[int]] = {}
    for c in contacts:
        if c.account_id is not None:
            by_account.setdefault(c.account_id, []).append(c.id)
    origins = [lead for lead in leads if lead.converted_at is not None and rng.random() < 0.6]
    origins = origins[: n // 3]
    times = seasonal_times(rng, n - len(origins), start_ms, now_ms)
    out: list[Deal] = []
    for lead in origins:
        t = dt_to_ms(lead.converted_at)  # type: ignore[arg-type]
        acc = accounts[(lead.converted_account_id or 1) - 1]
        deal = make_deal(
            rng,
            len(out) + 1,
            t,
            acc,
            lead.converted_contact_id,
            lead.owner_id,
            "new",
            roster,
            win_rate,
            now_ms,
        )
        lead.converted_deal_id = deal.id
        out.append(deal)
    first_win: dict[int, date] = {}  # account -> close date of its first won deal so far
    for deal in out:
        note_win(first_win, deal)
    for t in times:
        acc = accounts[below(rng, eligible(acc_times, t))]
        kind = "new"
        won_before = acc.id in first_win and first_win[acc.id] < ms_to_dt(t).date()
        if won_before and rng.random() < 0.5:  # expansions are sold to existing customers
            kind = pick(rng, ("upgrade", "cross_sell", "renewal"))
        contact_ids = by_account.get(acc.id)
        contact = pick(rng, contact_ids) if contact_ids and rng.random() < 0.9 else None
        owner = acc.owner_id if rng.random() < 0.6 else 0
        out.append(
            make_deal(rng, len(out) + 1, t, acc, contact, owner, kind, roster, win_rate, now_ms)
        )
        note_win(first_win, out[-1])
    return out


def note_win(first_win: dict[int, date], deal: Deal) -> None:
    if deal.stage == "closed_won" and deal.close_date < first_win.get(deal.account_id, date.max):
        first_win[deal.account_id] = deal.close_date


def spread_win_rates(rng: random.Random, reps: list[Rep]) -> dict[int, float]:
    """Win rates from 15% to 50%, evenly spread over the reps in shuffled order."""
    rates = [0.15 + 0.35 * i / max(1, len(reps) - 1) for i in range(len(reps))]
    rng.shuffle(rates)
    return {rep.id: rate for rep, rate in zip(reps, rates, strict=True)}


class Roster:
    """Reps ordered by start date, to pick an owner already hired at an instant."""

    def __init__(self, reps: list[Rep]) -> None:
        self.start = {r.id: rep_start_ms(r) for r in reps}
        self.ids = sorted(self.start, key=lambda rid: (self.start[rid], rid))
        self.starts = [self.start[rid] for rid in self.ids]

    def pick(self, rng: random.Random, at_ms: int, preferred: int = 0) -> int:
        """The preferred rep if hired by `at_ms`, else a random rep hired by then."""
        if preferred and self.start[preferred] <= at_ms:
            return preferred
        return self.ids[below(rng, eligible(self.starts, at_ms))]


def make_deal(
    rng: random.Random,
    deal_id: int,
    created: int,
    acc: Account,
    contact: int | None,
    owner: int,
    kind: str,
    roster: Roster,
    win_rate: dict[int, float],
    now_ms: int,
) -> Deal:
    """One deal: outcome, stage path, money, owner changes and line items."""
    created = min(created, now_ms - HOUR_MS)
    owner = roster.pick(rng, created, owner)
    cycle = int(DAY_MS * min(400.0, rng.lognormvariate(math.log(40), 0.7)))
    end = created + max(HOUR_MS, cycle)
    won = rng.random() < win_rate[owner]
    closed = end < now_ms
    path = stage_path(rng, won, closed, (now_ms - created) / max(1, end - created))
    stop = end if closed else now_ms - 1
    history = stage_times(rng, path, created, stop, closed)
    close_day = ms_to_dt(end).date()
    if not closed and close_day <= ms_to_dt(now_ms).date():
        close_day = ms_to_dt(now_ms).date() + timedelta(days=rng.randint(1, 30))
    amount = deal_amount(rng, acc, kind, CURRENCY_PICK.pick(rng))
    currency, value = amount
    owners = owner_changes(rng, owner, created, stop, roster)
    last = max(history[-1].at, owners[-1].at)
    modified = min(now_ms - 1, dt_to_ms(last) + below(rng, 3 * DAY_MS))
    lost = path[-1] == "closed_lost"
    reason = LOSS_PICK.pick(rng) if lost else None
    rival = (
        pick(rng, COMPETITORS) if lost and (reason == "Competitor" or rng.random() < 0.15) else None
    )
    margin = (
        Decimal(f"{rng.uniform(0.15, 0.65):.2f}")
        if path[-1] == "closed_won" and rng.random() < 0.85
        else None
    )
    custom = {"Deal category": kind}
    if rival:
        custom["Competitor"] = rival
    if margin is not None:
        custom["Margin"] = str(margin)
    return Deal(
        id=deal_id,
        name=f"{acc.name} - {kind.replace('_', ' ')} {close_day.year}",
        account_id=acc.id,
        contact_id=contact,
        owner_id=owners[-1].owner_id,
        stage=path[-1],
        amount=value,
        currency=currency,
        created_at=ms_to_dt(created),
        close_date=close_day,
        deal_type=kind,
        loss_reason=reason,
        competitor=rival,
        margin=margin,
        modified_at=ms_to_dt(modified),
        stage_history=history,
        owner_history=owners,
        line_items=line_items(rng, value),
        custom=custom,
    )


def stage_path(rng: random.Random, won: bool, closed: bool, elapsed: float) -> list[str]:
    """Stage keys visited, oldest first: mostly forward, some skips, a few steps back."""
    if closed:
        depth = len(OPEN_KEYS) - 1 if won else below(rng, len(OPEN_KEYS))
    else:
        depth = min(len(OPEN_KEYS) - 1, int(elapsed * len(OPEN_KEYS)))
    path = [OPEN_KEYS[0]]
    for i in range(1, depth + 1):
        if i < depth and rng.random() < 0.15:
            continue  # skipped stage
        path.append(OPEN_KEYS[i])
        if i >= 2 and i < depth and rng.random() < 0.06:
            path += [OPEN_KEYS[i - 1], OPEN_KEYS[i]]  # went back, then forward again
    if closed:
        path.append("closed_won" if won else "closed_lost")
    return path


def stage_times(
    rng: random.Random, path: list[str], start: int, stop: int, closed: bool
) -> list[StageChange]:
    """Strictly increasing instants: first at creation, the closing one at `stop`."""
    n = len(path)
    span = max(n, stop - start)
    inner = sorted(rng.random() for _ in range(n - 1))
    times = [start] + [start + int(f * span) for f in inner]
    if closed and n > 1:
        times[-1] = stop
    for i in range(1, n):
        times[i] = max(times[i], times[i - 1] + 1)
    return [StageChange(k, ms_to_dt(t)) for k, t in zip(path, times, strict=False)]


def deal_amount(
    rng: random.Random, acc: Account, kind: str, currency: str
) -> tuple[str, Decimal | None]:
    """Log-normal amount in the deal's currency; about 2% of deals have none."""
    if rng.random() < 0.02:
        return currency, None
    usd = rng.lognormvariate(math.log(12_000), 0.8) * SEGMENT_FACTOR[acc.custom["Segment"]]
    usd *= TYPE_FACTOR[kind]
    return currency, Decimal(f"{usd / float(CURRENCIES[currency]):.2f}")


def owner_changes(
    rng: random.Random, owner: int, start: int, stop: int, roster: Roster
) -> list[OwnerChange]:
    """The first owner at creation; about 6% of deals are reassigned once."""
    out = [OwnerChange(owner, ms_to_dt(start))]
    if rng.random() < 0.06 and stop - start > 2:
        at = start + 1 + below(rng, stop - start - 1)
        other = roster.pick(rng, at)
        if other != owner:
            out.append(OwnerChange(other, ms_to_dt(at)))
    return out


def line_items(rng: random.Random, amount: Decimal | None) -> list[LineItem]:
    """One to three products whose extended prices add up to the amount."""
    if amount is None:
        return []
    names = rng.sample(list(PRODUCTS), pick(rng, (1, 1, 2, 3)))
    weights = [PRODUCTS[name] for name in names]
    total = sum(weights)
    items: list[LineItem] = []
    left = amount
    for name, w in zip(names[:-1], weights[:-1], strict=True):
        qty = pick(rng, (1, 1, 2, 5))
        unit = Decimal(f"{float(amount) * w / total / qty:.2f}")
        items.append(LineItem(name, qty, unit))
        left -= unit * qty
    items.append(LineItem(names[-1], 1, left))
    return items


def fix_account_types(rng: random.Random, accounts: list[Account], deals: list[Deal]) -> None:
    """A prospect with a won deal becomes a customer (a share of them later churned)."""
    won = {d.account_id for d in deals if d.stage == "closed_won"}
    for acc in accounts:
        if acc.type == "prospect" and acc.id in won:
            acc.type = "former_customer" if rng.random() < 0.12 else "customer"


def build_activities(
    rng: random.Random,
    n: int,
    leads: list[Lead],
    contacts: list[Contact],
    deals: list[Deal],
    accounts: list[Account],
    now_ms: int,
) -> list[Activity]:
    """Calls, emails, meetings and tasks: lead follow-ups, deal work, contact and account touches."""
    out: list[Activity] = []
    deal_span = [(dt_to_ms(d.created_at), dt_to_ms(d.stage_history[-1].at)) for d in deals]
    contact_t0 = [dt_to_ms(c.created_at) for c in contacts]
    account_t0 = [dt_to_ms(a.created_at) for a in accounts]
    n_lead = min(n // 4, len(leads) * 3)
    for i in range(n_lead):
        lead = leads[i % len(leads)]
        base = dt_to_ms(lead.created_at)
        delay = int(rng.lognormvariate(math.log(3 * HOUR_MS), 1.2)) * (1 + 3 * (i // len(leads)))
        t = base + delay if base + delay < now_ms else base + below(rng, max(1, now_ms - base))
        out.append(
            make_activity(rng, len(out) + 1, t, lead.owner_id, None, lead.id, None, None, now_ms)
        )
    for _ in range(n - n_lead):
        roll = rng.random()
        if roll < 0.55 and deals:
            k = below(rng, len(deals))
            d, (t0, t1) = deals[k], deal_span[k]
            t = t0 + below(rng, max(1, t1 - t0 + 1))
            out.append(
                make_activity(
                    rng, len(out) + 1, t, d.owner_id, d.contact_id, None, d.id, d.account_id, now_ms
                )
            )
        elif roll < 0.85:
            k = below(rng, len(contacts))
            c, t0 = contacts[k], contact_t0[k]
            t = t0 + below(rng, max(1, now_ms - t0))
            out.append(
                make_activity(
                    rng, len(out) + 1, t, c.owner_id, c.id, None, None, c.account_id, now_ms
                )
            )
        else:
            k = below(rng, len(accounts))
            a, t0 = accounts[k], account_t0[k]
            t = t0 + below(rng, max(1, now_ms - t0))
            out.append(
                make_activity(rng, len(out) + 1, t, a.owner_id, None, None, None, a.id, now_ms)
            )
    return out


KINDS = ("call", "email", "meeting", "task")
KIND_WEIGHTS = (35, 35, 15, 15)
SUBJECTS = {"call": "Call", "email": "Re: proposal", "meeting": "Demo", "task": "Follow up"}


def make_activity(
    rng: random.Random,
    act_id: int,
    t: int,
    owner: int,
    contact: int | None,
    lead: int | None,
    deal: int | None,
    account: int | None,
    now_ms: int,
) -> Activity:
    """One engagement at instant `t` (clamped before now)."""
    t = min(t, now_ms - 2)
    kind = KIND_PICK.pick(rng)
    inbound = kind in ("call", "email") and rng.random() < 0.25
    if kind == "call":
        duration = int(rng.lognormvariate(math.log(240), 0.9))
    elif kind == "meeting":
        duration = pick(rng, (1800, 2700, 3600))
    else:
        duration = 0
    status = "planned" if kind == "task" and rng.random() < 0.1 else "completed"
    modified = min(now_ms - 1, t + below(rng, 2 * HOUR_MS))
    at = ms_to_dt(t)
    return Activity(
        id=act_id,
        kind=kind,
        direction="inbound" if inbound else "outbound",
        subject=f"{SUBJECTS[kind]} #{act_id}",
        occurred_at=at,
        duration_seconds=duration,
        owner_id=owner,
        contact_id=contact,
        lead_id=lead,
        deal_id=deal,
        account_id=account,
        status=status,
        created_at=at,
        modified_at=ms_to_dt(modified),
    )


NPS_WEIGHTS = (2, 1, 1, 2, 2, 3, 4, 8, 12, 14, 10)


def build_survey_answers(
    rng: random.Random,
    accounts: list[Account],
    contacts: list[Contact],
    reps: list[Rep],
    now_ms: int,
) -> list[SurveyAnswer]:
    """NPS from contacts of ~40% of customer accounts; quarterly eNPS per team (one team small)."""
    out: list[SurveyAnswer] = []
    by_account: dict[int, list[Contact]] = {}
    for c in contacts:
        if c.account_id is not None:
            by_account.setdefault(c.account_id, []).append(c)
    for acc in accounts:
        people = by_account.get(acc.id)
        if acc.type == "prospect" or not people or rng.random() >= 0.4:
            continue
        for person in rng.sample(people, min(len(people), pick(rng, (1, 1, 2, 3)))):
            t0 = dt_to_ms(person.created_at)
            t = t0 + below(rng, max(1, now_ms - t0))
            out.append(
                SurveyAnswer(
                    len(out) + 1,
                    "nps",
                    int(NPS_PICK.pick(rng)),
                    person.id,
                    None,
                    acc.id,
                    None,
                    ms_to_dt(t),
                    ms_to_dt(t),
                )
            )
    by_team: dict[str, list[Rep]] = {}
    for rep in reps:
        by_team.setdefault(rep.team, []).append(rep)
    teams = sorted(by_team)
    for quarter in range(4):
        day = now_ms - (quarter * 91 + 20) * DAY_MS
        for index, team in enumerate(teams):
            members = [r for r in by_team[team] if rng.random() < 0.9]
            if index == len(teams) - 1:
                members = members[:4]  # below the anonymity minimum of 5
            for rep in members:
                t = day + below(rng, 5 * DAY_MS)
                out.append(
                    SurveyAnswer(
                        len(out) + 1,
                        "enps",
                        int(NPS_PICK.pick(rng)),
                        None,
                        rep.id,
                        None,
                        team,
                        ms_to_dt(t),
                        ms_to_dt(t),
                    )
                )
    return out


# --- people, companies and places ---------------------------------------------------------------


def rep_start_ms(rep: Rep) -> int:
    """Midnight UTC of the rep's first day, in epoch ms."""
    return dt_to_ms(
        datetime(rep.started_on.year, rep.started_on.month, rep.started_on.day, tzinfo=UTC)
    )


def build_reps(rng: random.Random, n: int, now_ms: int) -> list[Rep]:
    """Reps in unequal teams (each led by a manager), regions per team, 1-2 recent hires per 10."""
    n_teams = 2 if n < 12 else max(3, round(n / 5))
    cycle = [t for t in range(n_teams) for _ in range(2 if t % 2 == 0 else 1)]
    team_of = [cycle[i % len(cycle)] for i in range(n)]
    manager: dict[int, int] = {}
    recent = max(1, round(n * 0.15))
    reps: list[Rep] = []
    for i, team in enumerate(team_of):
        is_manager = team not in manager
        manager.setdefault(team, i + 1)
        if is_manager:
            days = rng.randint(3 * 365, 7 * 365)
        elif i >= n - recent:
            days = rng.randint(20, 80)
        else:
            days = rng.randint(120, 5 * 365)
        start = ms_to_dt(now_ms - days * DAY_MS).date()
        person = pick_person(rng)
        word = TEAM_WORDS[team % len(TEAM_WORDS)]
        name = f"Team {word}" + (
            f" {team // len(TEAM_WORDS) + 1}" if team >= len(TEAM_WORDS) else ""
        )
        created = dt_to_ms(datetime(start.year, start.month, start.day, tzinfo=UTC))
        reps.append(
            Rep(
                id=i + 1,
                first_name=person.first,
                last_name=person.last,
                email=f"{person.handle}.{i + 1}@kpisync-demo.example",
                team=name,
                region=REGIONS[team % len(REGIONS)],
                manager_id=None if is_manager else manager[team],
                started_on=start,
                created_at=ms_to_dt(created + rng.randrange(8 * HOUR_MS, 10 * HOUR_MS)),
            )
        )
    return reps


def build_accounts(
    rng: random.Random, n: int, reps: list[Rep], start_ms: int, now_ms: int
) -> list[Account]:
    """Accounts created over the window (ids in creation order) with a Segment."""
    first = start_ms - 365 * DAY_MS
    times = sorted(first + below(rng, now_ms - 7 * DAY_MS - first) for _ in range(n))
    out: list[Account] = []
    for i, t in enumerate(times):
        lang = LANG_PICK.pick(rng)
        country, state, city = pick(rng, PLACES[lang])
        roll = rng.random()
        kind = "customer" if roll < 0.35 else "former_customer" if roll < 0.42 else "prospect"
        segment = SEGMENT_PICK.pick(rng)
        out.append(
            Account(
                id=i + 1,
                name=company_name(rng, lang),
                owner_id=pick(rng, reps).id,
                industry=pick(rng, INDUSTRIES),
                type=kind,
                country=country,
                state=state,
                city=city,
                created_at=ms_to_dt(t),
                modified_at=ms_to_dt(t + below(rng, now_ms - t)),
                custom={"Segment": segment},
            )
        )
    return out


def build_leads(
    rng: random.Random, n: int, reps: list[Rep], accounts: list[Account], start_ms: int, now_ms: int
) -> list[Lead]:
    """Leads over the window; about 30% converted into an account (and later a contact)."""
    times = sorted(start_ms + below(rng, now_ms - HOUR_MS - start_ms) for _ in range(n))
    roster = Roster(reps)
    acc_times = [dt_to_ms(a.created_at) for a in accounts]
    out: list[Lead] = []
    for i, t in enumerate(times):
        person = pick_person(rng)
        converted = t + int(DAY_MS * rng.lognormvariate(math.log(10), 0.9))
        if rng.random() < 0.3 and converted < now_ms - 1:
            status = "converted"
        elif now_ms - t < 14 * DAY_MS:
            status = pick(rng, ("new", "working"))
        else:
            status = STATUS_PICK.pick(rng)
        account = (
            accounts[below(rng, eligible(acc_times, converted))] if status == "converted" else None
        )
        last = converted if account else t
        out.append(
            Lead(
                id=i + 1,
                first_name=person.first,
                last_name=person.last,
                email=f"{person.handle}.l{i + 1}@mail.example",
                phone=phone(rng),
                company=account.name if account else company_name(rng, person.language),
                status=status,
                source=pick(rng, SOURCES),
                owner_id=roster.pick(rng, t),
                created_at=ms_to_dt(t),
                modified_at=ms_to_dt(min(now_ms - 1, last + below(rng, 10 * DAY_MS))),
                converted_at=ms_to_dt(converted) if account else None,
                converted_account_id=account.id if account else None,
                custom={"Preferred language": person.language},
            )
        )
    return out


def build_contacts(
    rng: random.Random,
    n: int,
    accounts: list[Account],
    leads: list[Lead],
    reps: list[Rep],
    now_ms: int,
) -> list[Contact]:
    """Standalone contacts (most with an account), then one contact per converted lead."""
    converted = [lead for lead in leads if lead.converted_at is not None]
    out: list[Contact] = []
    for _ in range(max(0, n - len(converted))):
        acc = pick(rng, accounts) if rng.random() < 0.9 else None
        t0 = dt_to_ms(acc.created_at) if acc else now_ms - 3 * 365 * DAY_MS
        t = t0 + below(rng, now_ms - HOUR_MS - t0)
        person = pick_person(rng)
        owner = acc.owner_id if acc and rng.random() < 0.7 else pick(rng, reps).id
        out.append(
            Contact(
                id=len(out) + 1,
                account_id=acc.id if acc else None,
                first_name=person.first,
                last_name=person.last,
                email=f"{person.handle}.c{len(out) + 1}@mail.example",
                phone=phone(rng),
                title=pick(rng, TITLES),
                owner_id=owner,
                lead_source=pick(rng, SOURCES),
                created_at=ms_to_dt(t),
                modified_at=ms_to_dt(t + below(rng, now_ms - t)),
                custom={"Preferred language": person.language},
            )
        )
    for lead in converted:
        done = dt_to_ms(lead.converted_at)  # type: ignore[arg-type]
        out.append(
            Contact(
                id=len(out) + 1,
                account_id=lead.converted_account_id,
                first_name=lead.first_name,
                last_name=lead.last_name,
                email=lead.email,
                phone=lead.phone,
                title=pick(rng, TITLES),
                owner_id=lead.owner_id,
                lead_source=lead.source,
                created_at=lead.created_at,
                modified_at=ms_to_dt(done + below(rng, now_ms - done)),
                custom=dict(lead.custom),
            )
        )
        lead.converted_contact_id = len(out)
    return out


CURRENCY_PICK = Weighted(tuple(CURRENCIES), CURRENCY_WEIGHTS)
LOSS_PICK = Weighted(LOSS_REASONS, LOSS_WEIGHTS)
KIND_PICK = Weighted(KINDS, KIND_WEIGHTS)
NPS_PICK = Weighted(tuple(str(score) for score in range(11)), NPS_WEIGHTS)
SEGMENT_PICK = Weighted(("SMB", "Mid-Market", "Enterprise"), (60, 30, 10))
STATUS_PICK = Weighted(("new", "working", "qualified", "unqualified"), (1, 3, 2, 4))
