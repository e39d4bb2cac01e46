"""What a person recognises a planned write by: the record's name in the store and, where the
CRM has one, the link to its page (`connector.record_url(entity, external_id)`, optional)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from kpisync.connector import Connector, record_linker
from kpisync.store.models import ENTITY_MODELS

CHUNK = 500


@dataclass(frozen=True)
class RecordLabel:
    name: str | None
    link: str | None


def record_labels(
    engine: Engine, source: str, records: Iterable[tuple[str, str]], connector: Connector
) -> dict[tuple[str, str], RecordLabel]:
    """(entity, external_id) -> its name and link, for each of `records`."""
    ids: dict[str, set[str]] = defaultdict(set)
    for entity, external_id in records:
        ids[entity].add(external_id)
    linker = record_linker(connector)
    labels: dict[tuple[str, str], RecordLabel] = {}
    with engine.connect() as connection:
        for entity, wanted in ids.items():
            names = names_of(connection, source, entity, sorted(wanted))
            for external_id in wanted:
                labels[(entity, external_id)] = RecordLabel(
                    names.get(external_id),
                    linker.record_url(entity, external_id) if linker else None,
                )
    return labels


def names_of(connection: Connection, source: str, entity: str, ids: list[str]) -> dict[str, str]:
    model = ENTITY_MODELS.get(entity)
    if model is None:
        return {}
    t = model.__table__  # type: ignore[attr-defined]
    columns = [c for c in ("name", "first_name", "last_name") if c in t.c]
    names: dict[str, str] = {}
    for start in range(0, len(ids), CHUNK):
        rows = connection.execute(
            select(t.c.external_id, *(t.c[c] for c in columns)).where(
                t.c.source == source, t.c.external_id.in_(ids[start : start + CHUNK])
            )
        )
        for row in rows:
            parts = [str(row._mapping[c]) for c in columns if row._mapping[c]]
            if parts:
                names[row.external_id] = " ".join(parts)
    return names
