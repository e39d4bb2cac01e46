"""eNPS anonymity: no group under the minimum size is shown, and none can be worked out.

A team's value is hidden when it has fewer answers than the minimum. Differencing: the org's value
minus the shown teams' values would reveal the rest (hidden teams and answers without a team);
when that rest has between 1 and minimum-1 answers, the smallest shown team is hidden too, until
the rest is 0 or at least the minimum. An org with fewer answers than the minimum is hidden.
Hidden values keep neither value nor count, so nothing stored or written back can reveal them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

from metrics.declaration import KpiValue

SMALL = "hidden: fewer than {n} answers (anonymity minimum)"
DIFFERENCING = "hidden: showing it would reveal a group of fewer than {n} answers by differencing"


def protect(values: list[KpiValue], minimum: int) -> list[KpiValue]:
    """`values` (one anonymous KPI, every grain and period) with every unsafe value hidden."""
    by_period: dict[tuple[str, date], list[KpiValue]] = defaultdict(list)
    for value in values:
        by_period[(value.period, value.period_start)].append(value)
    out: list[KpiValue] = []
    for group in by_period.values():
        out.extend(protect_period(group, minimum))
    return out


def protect_period(values: list[KpiValue], minimum: int) -> list[KpiValue]:
    org = [v for v in values if v.grain == "org"]
    teams = [v for v in values if v.grain != "org"]
    total = sum(v.count or 0 for v in org)
    hidden: dict[int, str] = {}
    for index, team in enumerate(teams):
        if (team.count or 0) < minimum:
            hidden[index] = SMALL
    while True:
        shown = [i for i in range(len(teams)) if i not in hidden]
        rest = total - sum(teams[i].count or 0 for i in shown)
        if not shown or rest == 0 or rest >= minimum or not org:
            break
        smallest = min(shown, key=lambda i: (teams[i].count or 0, teams[i].key))
        hidden[smallest] = DIFFERENCING
    out = [hide(v, SMALL, minimum) if total < minimum else v for v in org]
    out += [hide(t, hidden[i], minimum) if i in hidden else t for i, t in enumerate(teams)]
    return out


def hide(value: KpiValue, reason: str, minimum: int) -> KpiValue:
    return replace(value, value=None, count=None, excluded=None, reason=reason.format(n=minimum))
