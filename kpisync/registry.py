"""Finding connector classes: the entry-point group `kpisync.connectors`, never a path from config."""

from __future__ import annotations

from importlib.metadata import entry_points

from kpisync.config import SourceConfig
from kpisync.connector import Connector, ConnectorFactory
from kpisync.errors import ConfigError

GROUP = "kpisync.connectors"


def available_connectors() -> dict[str, ConnectorFactory]:
    found: dict[str, ConnectorFactory] = {}
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry.load()
    return found


def connector_factory(type_name: str) -> ConnectorFactory:
    known = {entry.name: entry for entry in entry_points(group=GROUP)}
    if type_name not in known:
        names = ", ".join(sorted(known)) or "none installed"
        raise ConfigError(
            f"unknown connector type {type_name!r}", hint=f"installed connector types: {names}"
        )
    factory: ConnectorFactory = known[type_name].load()
    return factory


def build_connector(source: SourceConfig) -> Connector:
    """The connector for one configured source; its options are validated by the connector."""
    return connector_factory(source.type)(source.name, source.options)
