"""The `[writeback]` table of settings.toml: which score goes to which CRM field, and the rules.

    [writeback]
    on_conflict = "overwrite"        # or "skip": leave a value a person typed over ours alone
    quota_period = "quarter"         # the period of quota attainment and win rate

    [writeback.upsell]               # every condition switched on must hold
    promoter = true                  # the account's NPS category is promoter
    active_within_days = 30          # an activity on the account in the last N days (0: off)
    won_before = true                # the account has a won deal
    no_open_upgrade = true           # and no open upgrade deal (types: metrics.roles.upgrade_types)

    [writeback.<source>]             # optional per-source keys:
    on_conflict = "skip"             # overrides the default above for this source
    batch_size = 50                  # records per write call, below the CRM's maximum
    mode = "auto"                    # "approve": a run only plans, `writeback approve PLAN` sends
                                     # it; "off": nothing is written for this source

    [writeback.<source>.<object>]    # object: account | contact | deal | user
    <score> = "<CRM field name>"     # e.g. nps_score = "kpisync_nps_score"

Only the fields named here are ever written. The NPS window, the eNPS anonymity minimum, the
stalled factor and quotas are the KPI engine's (`[metrics]`), so both always agree; quota
attainment and win rate are read from its last computation (`kpisync compute`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kpisync.config import Settings, validate_model
from kpisync.errors import ConfigError
from metrics import metric_config
from writeback.rules import ScoreParams, WritebackSettings
from writeback.scores import SCORES, Score

RESERVED = frozenset({"on_conflict", "quota_period", "upsell", "keep_days"})
SOURCE_KEYS = frozenset({"on_conflict", "batch_size", "mode"})
MODES = ("auto", "approve", "off")


@dataclass(frozen=True)
class Target:
    """One mapping: `score` of each `entity` record goes to CRM field `field`."""

    entity: str
    score: Score
    field: str


@dataclass(frozen=True)
class SourcePlan:
    """The write-back configuration of one source."""

    source: str
    targets: tuple[Target, ...]
    on_conflict: str
    rules: WritebackSettings
    batch_size: int | None = None
    mode: str = "auto"

    def for_entity(self, entity: str) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.entity == entity)

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.entity for t in self.targets))


def writeback_rules(settings: Settings) -> WritebackSettings:
    table = {k: v for k, v in settings.table("writeback").items() if k in RESERVED}
    return validate_model(WritebackSettings, table, prefix="writeback")


def mapped_sources(settings: Settings) -> list[str]:
    """Sources with a `[writeback.<source>]` table, each checked to be a configured source."""
    names = [
        k
        for k, v in settings.table("writeback").items()
        if k not in RESERVED and isinstance(v, dict)
    ]
    for name in names:
        if name not in settings.sources:
            raise ConfigError(
                f"writeback.{name}: no source named {name!r}",
                hint=f"configured sources: {', '.join(sorted(settings.sources))}",
            )
    return names


def source_plan(settings: Settings, source: str) -> SourcePlan:
    """The validated mapping of `source`; a source without one maps nothing."""
    rules = writeback_rules(settings)
    settings.source(source)
    table: dict[str, Any] = dict(settings.table("writeback").get(source) or {})
    prefix = f"writeback.{source}"
    on_conflict = table.pop("on_conflict", rules.on_conflict)
    if on_conflict not in ("overwrite", "skip"):
        raise ConfigError(f'{prefix}.on_conflict: expected "overwrite" or "skip"')
    batch_size = table.pop("batch_size", None)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"{prefix}.batch_size: expected a whole number of at least 1")
    mode = table.pop("mode", "auto")
    if mode not in MODES:
        raise ConfigError(
            f'{prefix}.mode: expected "auto", "approve" or "off", not {mode!r}',
            hint="auto writes every run, approve only plans until approved, off writes nothing",
        )
    targets: list[Target] = []
    for entity, mapping in table.items():
        targets.extend(parse_targets(f"{prefix}.{entity}", entity, mapping))
    return SourcePlan(
        source=source,
        targets=tuple(targets),
        on_conflict=on_conflict,
        rules=rules,
        batch_size=batch_size,
        mode=mode,
    )


def parse_targets(key: str, entity: str, mapping: Any) -> list[Target]:
    known = {s.name: s for s in SCORES if s.entity == entity}
    if not known:
        entities = sorted({s.entity for s in SCORES})
        raise ConfigError(
            f"{key}: no scores are written onto {entity!r} records",
            hint=f"objects with scores: {', '.join(entities)}",
        )
    if not isinstance(mapping, dict):
        raise ConfigError(f'{key}: expected a table of score = "CRM field"')
    targets, fields = [], set()
    for score, field in mapping.items():
        if score not in known:
            raise ConfigError(
                f"{key}.{score}: unknown score",
                hint=f"scores of {entity}: {', '.join(sorted(known))}",
            )
        if not isinstance(field, str) or not field.strip():
            raise ConfigError(f"{key}.{score}: expected the CRM field's API name as text")
        if field in fields:
            raise ConfigError(f"{key}.{score}: field {field!r} is mapped twice")
        fields.add(field)
        targets.append(Target(entity=entity, score=known[score], field=field))
    return targets


def score_params(settings: Settings, as_of: datetime) -> ScoreParams:
    metrics = metric_config(settings)
    return ScoreParams(
        as_of=as_of,
        today=as_of.astimezone(metrics.zone).date(),
        metrics=metrics,
        rules=writeback_rules(settings),
    )
