"""One computation: the connection it runs on, the settings, the window and the staged facts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Table, literal
from sqlalchemy.sql.elements import ColumnElement

from metrics.options import MetricConfig
from metrics.periods import Bucketer, Window
from metrics.portable import stage


@dataclass(frozen=True)
class Fact:
    """A staged table seen through one of its dates: `prefix + kind` holds the period start."""

    table: str
    prefix: str
    where: Any = None  # Callable[[Table], ColumnElement[bool]] | None
    rename: dict[str, str] = field(default_factory=dict)  # grain -> the column holding its key


@dataclass
class Run:
    connection: Connection
    config: MetricConfig
    window: Window
    bucketer: Bucketer
    tables: dict[str, Table] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name

    def table(self, name: str) -> Table:
        return self.tables[name]

    def once(self, name: str, columns: list[Column[Any]], build: Callable[[], Any]) -> Table:
        """A temporary table staged the first time a KPI asks for it, then shared by every query."""
        if name not in self.tables:
            self.tables[name] = stage(self.connection, name, columns, build())
        return self.tables[name]

    def period_column(self, fact: Fact, kind: str) -> ColumnElement[Any]:
        return self.tables[fact.table].c[fact.prefix + kind]

    def grain_column(self, fact: Fact, grain: str) -> ColumnElement[Any]:
        if grain == "org":
            return literal("org")
        return self.tables[fact.table].c[fact.rename.get(grain, grain)]
