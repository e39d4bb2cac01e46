"""The target drift guard: is each managed field still there, still writable, still accepting?

Before anything is sent, every planned value is checked against the field as the CRM describes it
now (`connector.discover()`): it exists, it is writable, its type can hold the score, and the value
fits (picklist options, number, date, true/false, length). A mapping that fails is paused (only
that one: the rest are written) with its reason stored; a paused mapping resumes by itself on the
first run that finds its field fine again. A run reads the field definitions once, at its start:
that read is also its credential check (docs/decisions/writeback-control.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, update

from kpisync.config import Settings
from kpisync.connector import Connector, FieldInfo
from writeback.models import MappingPause
from writeback.options import source_plan
from writeback.values import problem_with, type_problem

RECHECK = timedelta(hours=24)
# The names connectors give canonical objects in discover(). HubSpot reports its object types
# ("companies"); a canonical name is preferred where a connector reports one.
ENTITY_NAMES: dict[str, tuple[str, ...]] = {
    "account": ("account", "companies", "company", "Account", "Accounts"),
    "contact": ("contact", "contacts", "Contact", "Contacts"),
    "deal": ("deal", "deals", "Opportunity", "Potentials"),
    "user": ("user", "owners", "User", "Users"),
}


def fields_of(infos: Iterable[FieldInfo], entity: str) -> dict[str, FieldInfo]:
    names = ENTITY_NAMES.get(entity, (entity,))
    found: dict[str, FieldInfo] = {}
    for info in infos:
        if info.entity in names:
            rank = names.index(info.entity)
            held = found.get(info.name)
            if held is None or rank < names.index(held.entity):
                found[info.name] = info
    return found


class Guard:
    """Checks values field by field, asking the CRM for its field definitions once, lazily."""

    def __init__(self, connector: Connector, fields: list[FieldInfo] | None = None) -> None:
        self.connector = connector
        self._fields: dict[str, dict[str, FieldInfo]] | None = None
        if fields is not None:  # already read (the run's credential check)
            self._fields = {e: fields_of(fields, e) for e in ENTITY_NAMES}
        self.problems: dict[tuple[str, str], str] = {}
        self.checked: set[tuple[str, str]] = set()

    def field(self, entity: str, name: str) -> FieldInfo | None:
        if self._fields is None:
            infos = self.connector.discover()
            self._fields = {e: fields_of(infos, e) for e in ENTITY_NAMES}
        return self._fields.get(entity, {}).get(name)

    def check(self, entity: str, name: str, kind: str, value: str | None) -> bool:
        """Whether `value` may be sent to field `name` of `entity`; a refusal pauses the field."""
        key = (entity, name)
        if key in self.problems:
            return False
        problem = self.first_problem(entity, name, kind, value)
        if problem is not None:
            self.problems[key] = problem
            return False
        self.checked.add(key)
        return True

    def first_problem(self, entity: str, name: str, kind: str, value: str | None) -> str | None:
        info = self.field(entity, name)
        if info is None:
            return f"field {name} does not exist on {entity} records (see 'kpisync fields plan')"
        if not info.is_writable:
            return f"field {name} on {entity} records is read-only"
        problem = type_problem(info, kind) or problem_with(info, value)
        return f"field {name} on {entity} records refuses the value: {problem}" if problem else None


def paused_fields(connection: Connection, source: str) -> dict[tuple[str, str], str]:
    t = MappingPause.__table__  # type: ignore[attr-defined]
    rows = connection.execute(select(t.c.entity, t.c.field, t.c.reason).where(t.c.source == source))
    return {(r.entity, r.field): r.reason for r in rows}


def mapped_pauses(engine: Engine, settings: Settings, source: str) -> dict[tuple[str, str], str]:
    """The source's paused mappings that settings still map, with their reasons: a pause left by
    a mapping since removed from settings.toml no longer matters."""
    mapped = {(t.entity, t.field) for t in source_plan(settings, source).targets}
    with engine.connect() as connection:
        return {
            key: reason
            for key, reason in paused_fields(connection, source).items()
            if key in mapped
        }


def resting_pauses(
    connection: Connection, source: str, now: datetime
) -> dict[tuple[str, str], str]:
    """Paused mappings not due for their daily re-check: not planned at all this run."""
    t = MappingPause.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(t.c.entity, t.c.field, t.c.reason).where(
            t.c.source == source, t.c.checked_at > now - RECHECK
        )
    )
    return {(r.entity, r.field): r.reason for r in rows}


def record_pauses(
    connection: Connection,
    source: str,
    guard: Guard,
    scores: dict[tuple[str, str], str],
    now: datetime,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Store new pauses and lift those whose field passed this time; returns (paused, resumed)."""
    t = MappingPause.__table__  # type: ignore[attr-defined]
    before = paused_fields(connection, source)
    paused = [k for k in guard.problems if k not in before]
    for (entity, name), reason in guard.problems.items():
        if (entity, name) in before:
            connection.execute(
                update(t)
                .where(t.c.source == source, t.c.entity == entity, t.c.field == name)
                .values(reason=reason, checked_at=now)
            )
        else:
            connection.execute(
                t.insert().values(
                    source=source,
                    entity=entity,
                    field=name,
                    score=scores.get((entity, name), ""),
                    reason=reason,
                    paused_at=now,
                    checked_at=now,
                )
            )
    resumed = [k for k in guard.checked if k in before and k not in guard.problems]
    for entity, name in resumed:
        connection.execute(
            delete(t).where(t.c.source == source, t.c.entity == entity, t.c.field == name)
        )
    return paused, resumed


def lift_pauses(engine: Engine, source: str, fields: list[tuple[str, str]]) -> None:
    t = MappingPause.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        for entity, name in fields:
            connection.execute(
                delete(t).where(t.c.source == source, t.c.entity == entity, t.c.field == name)
            )
