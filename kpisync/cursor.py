"""The incremental cursor of one stream: a small immutable value, stored as JSON with its rows.

`value` is the last modified-time read (vendor format, compared by the connector), `seen_ids` the ids
already written that carry exactly that value. A connector reads `>= value` (minus any lookback),
drops `seen_ids`, and never reads past the run's signpost, so rows sharing a timestamp are never
lost or repeated. `state` holds a connector's own small extras (e.g. a paging mode).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MAX_SEEN_IDS = 50_000


@dataclass(frozen=True)
class Cursor:
    value: str | None = None
    seen_ids: frozenset[str] = frozenset()
    state: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Cursor:
        if not data:
            return cls()
        return cls(
            value=data.get("value"),
            seen_ids=frozenset(data.get("seen_ids", ())),
            state=tuple(sorted((str(k), str(v)) for k, v in data.get("state", {}).items())),
        )

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "seen_ids": sorted(self.seen_ids), "state": dict(self.state)}

    def get(self, key: str, default: str | None = None) -> str | None:
        return dict(self.state).get(key, default)

    def with_state(self, **values: str | None) -> Cursor:
        merged = dict(self.state)
        for key, value in values.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return replace(self, state=tuple(sorted(merged.items())))

    def advance(self, value: str, ids_at_value: set[str]) -> Cursor:
        """The cursor after rows up to `value`, where `ids_at_value` carry exactly `value`."""
        seen = set(ids_at_value)
        if value == self.value:
            seen |= self.seen_ids
        return replace(self, value=value, seen_ids=frozenset(seen))
