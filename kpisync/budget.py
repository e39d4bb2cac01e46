"""One API budget per CRM org, shared by sync and write-back, by every worker and every run.

Settings name an org, the connector instances that call it, and the share of its allowance kpisync
may use:

    [budgets.hubspot_portal]
    sources = ["hubspot_main"]
    daily_allowance = 500000     # calls per day the CRM allows the org (optional where the
                                 # connector reports it)
    daily_share = 0.5            # kpisync may make this share of them
    burst_allowance = 190        # calls per burst window (HubSpot private apps: 190 per 10 s)
    burst_seconds = 10
    burst_share = 0.5

The day's calls are counted in the store (`api_budget_days`), so the share holds across runs,
workers and stages. A run stops at a checkpoint (before the next page is read, before the next
write batch) when either kpisync's calls today reached `daily_share × daily_allowance`, or the CRM
reports fewer calls left than the part kept for everyone else, `(1 − daily_share) × allowance`.
It stops by raising `BudgetSpent`; cursors and the write-back outbox are committed per page and
batch, so the next run resumes there. Bursts are paced at the same checkpoints: when the window
already holds the share of the burst allowance, the checkpoint waits (a stop signal ends the wait).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from kpisync.config import Settings, StrictModel, validate_model
from kpisync.connector import (
    Allowance,
    Connector,
    FieldInfo,
    FieldSpec,
    FieldUpdate,
    Page,
    Problem,
    ProvisionStep,
    ReportsAllowance,
    StreamSpec,
    WriteResult,
    calls_in,
)
from kpisync.cursor import Cursor
from kpisync.errors import ConfigError, Interrupted
from kpisync.scheduler.models import ApiBudgetDay

log = logging.getLogger(__name__)
DAYS = ApiBudgetDay.__table__  # type: ignore[attr-defined]


class BudgetSettings(StrictModel):
    sources: list[str] = Field(min_length=1)
    daily_allowance: int | None = Field(default=None, ge=1)
    daily_share: float = Field(default=1.0, gt=0, le=1)
    burst_allowance: int | None = Field(default=None, ge=1)
    burst_seconds: float = Field(default=10.0, gt=0)
    burst_share: float = Field(default=1.0, gt=0, le=1)


@dataclass(frozen=True)
class OrgBudget:
    org: str
    settings: BudgetSettings
    zone: ZoneInfo


class BudgetSpent(Interrupted):
    """The org's API share is used: the run stopped at a checkpoint; the next one resumes."""


def org_budgets(settings: Settings) -> dict[str, OrgBudget]:
    """Every `[budgets.<org>]` table, validated; a source may belong to one org only."""
    budgets: dict[str, OrgBudget] = {}
    owner: dict[str, str] = {}
    zone = ZoneInfo(settings.core.timezone)
    for org, table in settings.table("budgets").items():
        parsed = validate_model(BudgetSettings, table, prefix=f"budgets.{org}")
        for source in parsed.sources:
            settings.source(source)
            if source in owner:
                raise ConfigError(
                    f"budgets.{org}.sources: {source} is already in budgets.{owner[source]}",
                    hint="a connector instance calls one CRM org",
                )
            owner[source] = org
        budgets[org] = OrgBudget(org, parsed, zone)
    return budgets


def budget_of(settings: Settings, source: str) -> OrgBudget | None:
    for budget in org_budgets(settings).values():
        if source in budget.settings.sources:
            return budget
    return None


def reported_allowance(connector: Any) -> Allowance:
    """The connector's report, through `api_allowance()` where it offers one (HubSpot and
    Salesforce, from their limit headers); nothing for a CRM that reports no daily limit."""
    if isinstance(connector, ReportsAllowance):
        return connector.api_allowance()
    return Allowance()


# --- the ledger in the store ---------------------------------------------------------------------
def add_calls(
    engine: Engine, org: str, day: date, calls: int, remaining: int | None, at: datetime
) -> tuple[int, int | None]:
    """Add `calls` to the day's count (and the CRM's reading); returns the day's totals."""
    values: dict[str, Any] = {"calls": DAYS.c.calls + calls}
    if remaining is not None:
        values.update(remaining=remaining, read_at=at)
    where = (DAYS.c.org == org) & (DAYS.c.day == day)
    for _ in range(2):
        with engine.begin() as connection:
            if connection.execute(update(DAYS).where(where).values(**values)).rowcount:
                row = connection.execute(select(DAYS.c.calls, DAYS.c.remaining).where(where)).one()
                return int(row.calls), row.remaining
        try:
            with engine.begin() as connection:
                connection.execute(
                    DAYS.insert().values(
                        org=org, day=day, calls=calls, remaining=remaining, read_at=at
                    )
                )
            return calls, remaining
        except IntegrityError:
            continue  # another worker inserted the day first: add to its row
    raise RuntimeError("unreachable: the budget row was neither updated nor inserted")


def day_usage(engine: Engine, org: str, day: date) -> tuple[int, int | None]:
    with engine.connect() as connection:
        row = connection.execute(
            select(DAYS.c.calls, DAYS.c.remaining).where(DAYS.c.org == org, DAYS.c.day == day)
        ).first()
    return (int(row.calls), row.remaining) if row else (0, None)


# --- the gate at checkpoints ---------------------------------------------------------------------
class BudgetGate:
    """Counts one connector's calls into the org's day and says when the share is spent."""

    def __init__(
        self,
        engine: Engine,
        budget: OrgBudget,
        connector: Connector,
        *,
        clock: Callable[[], datetime],
        stop: threading.Event | None = None,
    ) -> None:
        self.engine, self.budget, self.connector = engine, budget, connector
        self.clock = clock
        self.stop = stop or threading.Event()
        self.counted = calls_in(connector.api_usage())
        self.window: deque[tuple[float, int]] = deque()
        self.spent: str | None = None

    def today(self) -> date:
        return self.clock().astimezone(self.budget.zone).date()

    def known_allowance(self) -> int | None:
        """The day's allowance: from settings, else as the CRM last reported it (None before
        a CRM that reports it in headers has answered a call)."""
        configured = self.budget.settings.daily_allowance
        return configured or reported_allowance(self.connector).daily_limit

    def allowance(self) -> int:
        limit = self.known_allowance()
        if limit is None:
            raise ConfigError(
                f"budgets.{self.budget.org}.daily_allowance: not set, and the "
                "connector does not report the org's daily limit",
                hint="set daily_allowance to the calls per day the CRM allows",
            )
        return limit

    def checkpoint(self) -> None:
        """Record the calls since the last checkpoint; raise BudgetSpent when the share is used."""
        total = calls_in(self.connector.api_usage())
        delta, self.counted = total - self.counted, total
        remaining = reported_allowance(self.connector).daily_remaining
        calls, stored_remaining = add_calls(
            self.engine, self.budget.org, self.today(), delta, remaining, self.clock()
        )
        self.judge(calls, remaining if remaining is not None else stored_remaining)
        self.pace(total)

    def judge(self, calls: int, remaining: int | None) -> None:
        s = self.budget.settings
        allowance = self.allowance()
        share = int(s.daily_share * allowance)
        reserved = allowance - share
        if calls >= share:
            self.spent = f"kpisync made {calls} of its {share} calls today"
        elif remaining is not None and remaining <= reserved:
            self.spent = (
                f"the CRM reports {remaining} calls left today, and {reserved} are kept for others"
            )
        if self.spent:
            raise BudgetSpent(
                f"API budget of {self.budget.org} used: {self.spent}",
                hint="the next run resumes from this checkpoint",
            )

    def pace(self, total: int) -> None:
        """Wait at this checkpoint while the burst window already holds the burst share."""
        s = self.budget.settings
        if s.burst_allowance is None:
            return
        cap = max(1, int(s.burst_allowance * s.burst_share))
        now = time.monotonic()
        self.window.append((now, total))
        while self.window and now - self.window[0][0] > s.burst_seconds:
            self.window.popleft()
        used = total - self.window[0][1] if self.window else 0
        if used >= cap and not self.stop.is_set():
            wait = s.burst_seconds - (now - self.window[0][0])
            log.info(
                "pacing %s: %d calls in the last %.0f s; waiting %.1f s",
                self.budget.org,
                used,
                s.burst_seconds,
                wait,
            )
            self.stop.wait(max(0.0, wait))


class BudgetedConnector:
    """A connector whose reads and writes pass the org's budget gate at every checkpoint."""

    def __init__(self, inner: Connector, gate: BudgetGate) -> None:
        self.inner, self.gate = inner, gate
        self.type_name = inner.type_name

    def __getattr__(self, name: str) -> Any:  # e.g. write_batch_size, where a connector has one
        return getattr(self.inner, name)

    def precheck(self) -> None:
        """Before the run's work: stop at once when today's recorded usage already spent the
        share, or when the CRM says others left too little (asked, when today has no reading)."""
        calls, remaining = day_usage(self.gate.engine, self.gate.budget.org, self.gate.today())
        if remaining is None:
            remaining = reported_allowance(self.inner).daily_remaining
        if self.gate.known_allowance() is None and isinstance(self.inner, ReportsAllowance):
            return  # the limit comes with the first answer (HubSpot): the first checkpoint judges
        self.gate.judge(calls, remaining)

    def check(self) -> list[Problem]:
        return self.inner.check()

    def discover(self) -> list[FieldInfo]:
        return self.inner.discover()

    def streams(self) -> list[StreamSpec]:
        return self.inner.streams()

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        self.gate.checkpoint()
        return self.inner.ensure_fields(specs, apply=apply)

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        pages = self.inner.read(stream, cursor, signpost=signpost)
        try:
            while True:
                self.gate.checkpoint()
                try:
                    page = next(pages)
                except StopIteration:
                    return
                yield page
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        for chunk in self.inner.list_ids():
            self.gate.checkpoint()
            yield chunk

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        self.gate.checkpoint()
        return self.inner.write(entity, updates)

    def api_usage(self) -> dict[str, int]:
        return self.inner.api_usage()

    def close(self) -> None:
        self.inner.close()
