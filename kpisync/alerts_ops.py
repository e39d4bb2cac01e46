"""Operations alerts: a connector failing N runs in a row, its data older than a set age, its
write-back fields paused (a field deleted or changed in the CRM), or its worker unable to reach
the store.

    [alerts]
    failures_in_a_row = 3            # open a "failing" incident after this many failed runs
    stale_after_minutes = 180        # open a "stale" incident when the last good sync is older
    webhook_url_env = "KPISYNC_OPS_WEBHOOK"   # optional; the URL is a secret (chat hooks embed keys)
    timeout_seconds = 5
    check_every_seconds = 60         # how often `kpisync run` looks for stale data between runs

Each condition is an incident (`ops_incidents`): opened once, reported once to the log and the
webhook, closed (and reported resolved) when the condition clears. A webhook that fails is retried
at the next review while the incident stays open; it is never sent twice once accepted. Reviews of
one instance run under that instance's lease, so several workers never report twice. A store
outage is recorded once the store answers again (`StoreOutage`): its row decides which worker
sends, so one outage is one incident however many workers saw it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from kpisync.config import Settings, StrictModel, validate_model
from kpisync.scheduler.history import finished_statuses, first_claim, last_success, now_utc
from kpisync.scheduler.models import OpsIncident
from kpisync.secrets import mask, read_secret
from kpisync.stages import paused_writeback

log = logging.getLogger(__name__)
INCIDENTS = OpsIncident.__table__  # type: ignore[attr-defined]
FAILING, STALE, STORE, PAUSED = "failing", "stale", "store", "writeback_paused"
OPENED = {
    FAILING: "is failing",
    STALE: "has stale data",
    STORE: "cannot reach its store",
    PAUSED: "has write-back fields paused",
}
RECOVERED = {
    FAILING: "runs succeed again",
    STALE: "has fresh data again",
    STORE: "reaches its store again",
    PAUSED: "writes all its mapped fields again",
}
SHOWN_PAUSES = 3  # an incident names this many paused fields; `kpisync status` names them all


class AlertSettings(StrictModel):
    failures_in_a_row: int = Field(default=3, ge=1)
    stale_after_minutes: float | None = Field(default=None, gt=0)
    webhook_url_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    check_every_seconds: float = Field(default=60.0, gt=0)


def alert_settings(settings: Settings) -> AlertSettings:
    return validate_model(AlertSettings, settings.table("alerts"), prefix="alerts")


@dataclass(frozen=True)
class Notice:
    source: str
    kind: str
    state: str  # open | resolved
    since: datetime
    detail: str

    @property
    def text(self) -> str:
        since = f"{self.since:%Y-%m-%d %H:%M} UTC"
        if self.state == "resolved":
            return f"kpisync: {self.source} {RECOVERED[self.kind]} (incident open since {since})"
        return f"kpisync: {self.source} {OPENED[self.kind]} since {since}: {self.detail}"

    def payload(self) -> dict[str, Any]:
        return {
            "text": mask(self.text),
            "source": self.source,
            "kind": self.kind,
            "state": self.state,
            "since": self.since.isoformat(),
            "detail": mask(self.detail),
        }


Sender = Callable[[Notice], bool]


def webhook_sender(config: AlertSettings) -> Sender:
    """POST each notice as JSON to the configured webhook; True when it was accepted."""
    url = (
        read_secret(config.webhook_url_env, key="alerts.webhook_url_env")
        if config.webhook_url_env
        else None
    )

    def send(notice: Notice) -> bool:
        if url is None:
            return True
        try:
            response = httpx.post(url, json=notice.payload(), timeout=config.timeout_seconds)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning(
                "ops alert webhook failed (retried at the next review): %s",
                mask(f"{type(error).__name__}: {error}"),
            )
            return False
        return True

    return send


def failing_condition(engine: Engine, source: str, config: AlertSettings) -> str | None:
    """The newest error when the last N finished runs all failed, else None."""
    recent = finished_statuses(engine, source, config.failures_in_a_row)
    if len(recent) < config.failures_in_a_row or any(status != "failed" for status, _ in recent):
        return None
    return f"{len(recent)} runs in a row failed; the last: {mask(recent[0][1] or 'no message')}"


def stale_condition(
    engine: Engine, source: str, config: AlertSettings, now: datetime
) -> str | None:
    if config.stale_after_minutes is None:
        return None
    limit = timedelta(minutes=config.stale_after_minutes)
    fresh = last_success(engine, source)
    if fresh is None:
        began = first_claim(engine, source)
        if began is None or now - began < limit:
            return None
        return f"no successful sync since scheduling began {_age(now - began)} ago"
    if now - fresh < limit:
        return None
    return f"the last successful sync ended {_age(now - fresh)} ago"


def paused_condition(engine: Engine, settings: Settings, source: str) -> str | None:
    """The paused write-back fields, named with their reasons, or None when none is paused."""
    paused = paused_writeback(engine, settings, source)
    if not paused:
        return None
    named = "; ".join(f"{key}: {reason}" for key, reason in list(paused.items())[:SHOWN_PAUSES])
    more = f"; {len(paused) - SHOWN_PAUSES} more" if len(paused) > SHOWN_PAUSES else ""
    return f"{len(paused)} field(s) not written: {named}{more}"


def _age(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def review(
    engine: Engine,
    settings: Settings,
    source: str,
    config: AlertSettings,
    send: Sender,
    *,
    now: datetime | None = None,
) -> list[Notice]:
    """Open, re-send or close the source's incidents; returns the notices reported now."""
    now = now or now_utc()
    conditions = {
        FAILING: failing_condition(engine, source, config),
        STALE: stale_condition(engine, source, config, now),
        PAUSED: paused_condition(engine, settings, source),
    }
    return [
        notice
        for kind, detail in conditions.items()
        if (notice := settle(engine, source, kind, detail, send, now)) is not None
    ]


def settle(
    engine: Engine, source: str, kind: str, detail: str | None, send: Sender, now: datetime
) -> Notice | None:
    with engine.connect() as connection:
        open_row = connection.execute(
            select(INCIDENTS).where(
                INCIDENTS.c.source == source,
                INCIDENTS.c.kind == kind,
                INCIDENTS.c.closed_at.is_(None),
            )
        ).first()
    if open_row is None and detail is None:
        return None
    if open_row is None:
        notice = Notice(source, kind, "open", now, detail or "")
        log.warning("%s", notice.text)
        delivered = send(notice)
        with engine.begin() as connection:
            connection.execute(
                INCIDENTS.insert().values(
                    source=source,
                    kind=kind,
                    opened_at=now,
                    detail=notice.detail,
                    notified=delivered,
                )
            )
        return notice
    if detail is not None:
        if open_row.notified:
            return None
        notice = Notice(source, kind, "open", open_row.opened_at, open_row.detail)
        if send(notice):
            _update(engine, open_row.id, notified=True)
        return None
    notice = Notice(source, kind, "resolved", open_row.opened_at, "")
    log.warning("%s", notice.text)
    _update(engine, open_row.id, closed_at=now)
    if open_row.notified:
        send(notice)  # best effort: a lost "resolved" is not retried
    return notice


def _update(engine: Engine, incident: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(INCIDENTS).where(INCIDENTS.c.id == incident).values(**values))


def open_incidents(engine: Engine, source: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(INCIDENTS).where(
                    INCIDENTS.c.source == source, INCIDENTS.c.closed_at.is_(None)
                )
            )
        )


class StoreOutage:
    """The store incident. While the store cannot be reached, each worker notes in memory when it
    first found it so (logged once); once the store answers, the worker records the outage as an
    incident row. Workers that saw the same outage find its row (their spans overlap) and only
    widen it, under a transaction lock per source, so exactly one of them sends the notices
    (opened, then resolved), however many workers saw it. Until the store answers, /healthz says
    it is unreachable."""

    def __init__(self, engine: Engine, send: Sender) -> None:
        self.engine, self.send = engine, send
        self.lock = threading.Lock()
        self.outages: dict[str, tuple[datetime, str]] = {}  # source -> (first seen, detail)

    def down(self, sources: list[str], detail: str, now: datetime) -> None:
        for source in sources:
            with self.lock:
                if source in self.outages:
                    continue
                self.outages[source] = (now, detail)
            log.warning("%s", Notice(source, STORE, "open", now, detail).text)

    def back(self, sources: list[str], now: datetime) -> None:
        for source in sources:
            with self.lock:
                seen = self.outages.get(source)
            if seen is None:
                continue
            try:
                notices = record_outage(self.engine, source, seen[0], now, seen[1])
            except SQLAlchemyError as error:
                log.info("%s: store outage not recorded yet (%s)", source, type(error).__name__)
                continue
            with self.lock:
                self.outages.pop(source, None)
            log.warning("%s", Notice(source, STORE, "resolved", seen[0], "").text)
            for notice in notices:
                self.send(notice)  # best effort: the outage is over, and recorded


def record_outage(
    engine: Engine, source: str, since: datetime, until: datetime, detail: str
) -> list[Notice]:
    """Record a store outage seen from `since` to `until`; the notices to send: none when another
    worker already recorded the same outage (its span overlaps), else opened and resolved."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # SQLite serialises writers by itself
            connection.execute(select(func.pg_advisory_xact_lock(lock_key(f"incident:{source}"))))
        same = connection.execute(
            select(INCIDENTS)
            .where(
                INCIDENTS.c.source == source,
                INCIDENTS.c.kind == STORE,
                INCIDENTS.c.opened_at <= until,
                INCIDENTS.c.closed_at >= since,
            )
            .order_by(INCIDENTS.c.id)
            .limit(1)
        ).first()
        if same is not None:
            connection.execute(
                update(INCIDENTS)
                .where(INCIDENTS.c.id == same.id)
                .values(opened_at=min(same.opened_at, since), closed_at=max(same.closed_at, until))
            )
            return []
        connection.execute(
            INCIDENTS.insert().values(
                source=source,
                kind=STORE,
                opened_at=since,
                closed_at=until,
                detail=detail,
                notified=True,
            )
        )
    return [
        Notice(source, STORE, "open", since, detail),
        Notice(source, STORE, "resolved", since, ""),
    ]


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL's advisory lock key type)."""
    digest = hashlib.blake2b(f"kpisync:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
