"""One line on how write-back of a source is held back now, for `kpisync status`: its mode
(off, or approve with the plan awaiting approval) and the fields a revert holds."""

from __future__ import annotations

from sqlalchemy import Engine, select

from kpisync.config import Settings
from writeback import outbox
from writeback.options import mapped_sources, source_plan
from writeback.runs import holds


def control_summary(engine: Engine, settings: Settings, source: str) -> str | None:
    if source not in mapped_sources(settings):
        return None
    mode = source_plan(settings, source).mode
    parts = []
    if mode == "off":
        parts.append(f'write-back off (writeback.{source}.mode = "off")')
    with engine.connect() as connection:
        if mode == "approve":
            waiting = connection.execute(
                select(outbox.RUNS.c.id)
                .where(outbox.RUNS.c.source == source, outbox.RUNS.c.status == "planned")
                .order_by(outbox.RUNS.c.id.desc())
            ).scalar()
            parts.append(
                f"write-back plan {waiting} awaits: kpisync writeback approve {waiting}"
                if waiting
                else "write-back in approve mode, no plan waiting"
            )
        held = holds(connection, source)
    if held:
        names = ", ".join(f"{entity}.{name}" for entity, name in sorted(held))
        parts.append(f"held after a revert: {names} (kpisync writeback resume --source {source})")
    return "; ".join(parts) or None
