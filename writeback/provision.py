"""`kpisync fields plan|apply SOURCE`: the managed fields a source's mapping needs in its CRM.

The connector creates what its API allows (`ensure_fields`) and says exactly how for the rest
(e.g. "HubSpot has no user record to hold it" for eNPS). Fields that already exist are checked the
way the drift guard will check them before every write: writable, and of a type that holds the
score.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpisync.connector import Connector, FieldSpec
from writeback.guard import fields_of
from writeback.options import SourcePlan
from writeback.values import type_problem

LABEL_PREFIX = "kpisync: "


@dataclass(frozen=True)
class FieldStep:
    entity: str
    field: str
    score: str
    action: str  # exists | create | manual
    detail: str
    problem: str | None = None


def field_specs(plan: SourcePlan) -> list[FieldSpec]:
    return [
        FieldSpec(
            entity=t.entity,
            name=t.field,
            label=LABEL_PREFIX + t.score.title,
            type=t.score.kind,
            options=t.score.options,
        )
        for t in plan.targets
    ]


def provision_fields(plan: SourcePlan, connector: Connector, *, apply: bool) -> list[FieldStep]:
    """What each managed field needs (and, with `apply`, creates it where the API allows)."""
    steps = connector.ensure_fields(field_specs(plan), apply=apply)
    scores = {(t.entity, t.field): t for t in plan.targets}
    existing = [s for s in steps if s.action == "exists"]
    infos = connector.discover() if existing else []
    out = []
    for step in steps:
        spec = step.spec
        target = scores[(spec.entity, spec.name)]
        problem = None
        if step.action == "exists":
            info = fields_of(infos, spec.entity).get(spec.name)
            if info is None:
                problem = "not found when re-read"
            elif not info.is_writable:
                problem = "read-only: kpisync cannot write it"
            else:
                problem = type_problem(info, spec.type)
                if problem is None and spec.options:
                    missing = [o for o in spec.options if o not in info.options]
                    problem = f"options missing: {', '.join(missing)}" if missing else None
        detail = step.detail or ("created" if apply and step.action == "create" else "")
        out.append(
            FieldStep(spec.entity, spec.name, target.score.name, step.action, detail, problem)
        )
    return out
