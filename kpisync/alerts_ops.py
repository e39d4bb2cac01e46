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
one instance run under that instance's run lock, so several workers never report twice. A store
outage cannot be kept in the store: `StoreOutage` holds it in the worker's memory instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field
from sqlalchemy import Engine, select, update

from kpisync.config import Settings, StrictModel, validate_model
from kpisync.stages import paused_writeback
from kpisync.scheduler.history import finished_statuses, first_claim, last_success, now_utc
from kpisync.scheduler.models import OpsIncident
from kpisync.secrets import mask, read_secret

log = logging.getLogger(__name__)
INCIDENTS = OpsIncident.__table__  # type: ignore[attr-defined]
FAILING, STALE, STORE, PAUSED = "failing", "stale", "store", "writeback_paused"
OPENED = {FAILING: "is failing", STALE: "has stale data", STORE: "cannot reach its store",
          PAUSED: "has write-back fields paused"}
RECOVERED = {FAILING: "runs succeed again", STALE: "has fresh data again",
             STORE: "reaches its store again", PAUSED: "writes all its mapped fields again"}
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
        return {"text": mask(self.text), "source": self.source, "kind": self.kind,
                "state": self.state, "since": self.since.isoformat(), "detail": mask(self.detail)}


Sender = Callable[[Notice], bool]


def webhook_sender(config: AlertSettings) -> Sender:
    """POST each notice as JSON to the configured webhook; True when it was accepted."""
    url = read_secret(config.webhook_url_env, key="alerts.webhook_url_env") \
        if config.webhook_url_env else None

    def send(notice: Notice) -> bool:
        if url is None:
            return True
        try:
            response = httpx.post(url, json=notice.payload(), timeout=config.timeout_seconds)
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("ops alert webhook failed (retried at the next review): %s",
                        mask(f"{type(error).__name__}: {error}"))
            return False
        return True

    return send


def failing_condition(engine: Engine, source: str, config: AlertSettings) -> str | None:
    """The newest error when the last N finished runs all failed, else None."""
    recent = finished_statuses(engine, source, config.failures_in_a_row)
    if len(recent) < config.failures_in_a_row or any(status != "failed" for status, _ in recent):
        return None
    return f"{len(recent)} runs in a row failed; the last: {mask(recent[0][1] or 'no message')}"


def stale_condition(engine: Engine, source: str, config: AlertSettings, now: datetime) -> str | None:
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


def review(engine: Engine, settings: Settings, source: str, config: AlertSettings, send: Sender,
           *, now: datetime | None = None) -> list[Notice]:
    """Open, re-send or close the source's incidents; returns the notices reported now."""
    now = now or now_utc()
    conditions = {FAILING: failing_condition(engine, source, config),
                  STALE: stale_condition(engine, source, config, now),
                  PAUSED: paused_condition(engine, settings, source)}
    return [notice for kind, detail in conditions.items()
            if (notice := settle(engine, source, kind, detail, send, now)) is not None]


def settle(engine: Engine, source: str, kind: str, detail: str | None, send: Sender,
           now: datetime) -> Notice | None:
    with engine.connect() as connection:
        open_row = connection.execute(
            select(INCIDENTS).where(INCIDENTS.c.source == source, INCIDENTS.c.kind == kind,
                                    INCIDENTS.c.closed_at.is_(None))).first()
    if open_row is None and detail is None:
        return None
    if open_row is None:
        notice = Notice(source, kind, "open", now, detail or "")
        log.warning("%s", notice.text)
        delivered = send(notice)
        with engine.begin() as connection:
            connection.execute(INCIDENTS.insert().values(source=source, kind=kind, opened_at=now,
                                                         detail=notice.detail, notified=delivered))
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
        return list(connection.execute(
            select(INCIDENTS).where(INCIDENTS.c.source == source, INCIDENTS.c.closed_at.is_(None))))


class StoreOutage:
    """The incident kept in memory, since the store cannot keep it: opened once per source when
    a slot or a review finds the store unreachable (its notice sent again at the next finding
    until the webhook takes it), resolved when the store answers again."""

    def __init__(self, send: Sender) -> None:
        self.send = send
        self.lock = threading.Lock()
        self.incidents: dict[str, tuple[Notice, bool]] = {}  # source -> (notice, delivered)

    def down(self, sources: list[str], detail: str, now: datetime) -> None:
        for source in sources:
            with self.lock:
                notice, delivered = self.incidents.get(source, (None, False))
            if delivered:
                continue
            if notice is None:
                notice = Notice(source, STORE, "open", now, detail)
                log.warning("%s", notice.text)
            delivered = self.send(notice)
            with self.lock:
                self.incidents[source] = (notice, delivered)

    def back(self, sources: list[str]) -> None:
        for source in sources:
            with self.lock:
                notice, delivered = self.incidents.pop(source, (None, False))
            if notice is None:
                continue
            resolved = Notice(source, STORE, "resolved", notice.since, "")
            log.warning("%s", resolved.text)
            if delivered:
                self.send(resolved)  # best effort, as for the stored incidents
