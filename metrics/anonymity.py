"""eNPS anonymity: no group under the minimum size is shown, and none can be worked out.

The groups are the org and each team, in every period (week, month, quarter, year). One group
contains another when its grain does (the org holds every team; a team only itself) and its
period does (a week wholly inside a month, a month in a quarter, a quarter in a year). Answers
without a team count for the org only. A value is shown only when, for everything shown:

- it comes from at least the minimum number of answers;
- for every shown pair where one contains the other, the difference is 0 answers or at least the
  minimum (a month minus a week inside it, the org minus a team, a quarter minus a team's month);
- for every shown group and every level below it (the teams of the same period, the org's or a
  team's shorter periods inside it), the group minus the shown groups of that level inside it is
  0 answers or at least the minimum (a quarter minus its three months, the org minus its teams).

Groups under the minimum are hidden first; then, while a pair or a level breaks a rule, the group
taking part in the most broken rules is hidden (ties: the fewest answers, then the shortest
period), which resolves a rule each time (every shown group has at least the minimum answers), so
few values are hidden. A group without answers says so and hides nothing. Hidden values keep
neither value nor count, so nothing stored or written back can reveal them; write-back reads the
stored values (`metrics.records.team_enps`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date

from kpisync.calendars import GREGORIAN, Calendar
from metrics.declaration import KpiValue
from metrics.periods import KINDS, period_end

SMALL = "hidden: fewer than {n} answers (anonymity minimum)"
DIFFERENCING = "hidden: showing it would reveal a group of fewer than {n} answers by differencing"
NO_ANSWERS = "no eNPS answer in the period"


@dataclass(frozen=True)
class Group:
    grain: str  # org | team
    key: str
    kind: str
    start: date
    end: date
    count: int

    def level(self) -> tuple[str, str]:
        return self.grain, self.kind

    def holds(self, other: Group) -> bool:
        """Whether every answer of `other` is one of this group's (and they are not the same)."""
        grain = self.grain == "org" or (other.grain == "team" and other.key == self.key)
        period = self.start <= other.start and other.end <= self.end
        return grain and period and (self.level(), self.start) != (other.level(), other.start)


def group_of(value: KpiValue, calendar: Calendar = GREGORIAN) -> Group:
    return Group(
        value.grain,
        value.key,
        value.period,
        value.period_start,
        period_end(value.period_start, value.period, calendar),
        value.count or 0,
    )


def protect(values: list[KpiValue], minimum: int, calendar: Calendar = GREGORIAN) -> list[KpiValue]:
    """`values` (one anonymous KPI, every grain and period) with every unsafe value hidden."""
    groups = [group_of(v, calendar) for v in values]
    hidden = hidden_groups(groups, minimum)
    return [
        hide(v, hidden[i], minimum)
        if i in hidden
        else replace(v, reason=NO_ANSWERS)
        if not groups[i].count and v.value is None
        else v
        for i, v in enumerate(values)
    ]


def hidden_groups(groups: list[Group], minimum: int) -> dict[int, str]:
    """Index -> reason, for each group that must not be shown."""
    hidden = {i: SMALL for i, g in enumerate(groups) if 0 < g.count < minimum}
    inside = {i: [j for j, h in enumerate(groups) if g.holds(h)] for i, g in enumerate(groups)}
    while True:
        blame = broken_rules(groups, inside, hidden, minimum)
        if not blame:
            return hidden
        worst = max(
            blame,
            key=lambda i: (
                blame[i],
                -groups[i].count,
                -KINDS.index(groups[i].kind),
                groups[i].grain == "team",
            ),
        )
        hidden[worst] = DIFFERENCING


def broken_rules(
    groups: list[Group], inside: dict[int, list[int]], hidden: dict[int, str], minimum: int
) -> Counter[int]:
    """How many broken rules (pairs and levels, see the module) each shown group takes part in."""
    blame: Counter[int] = Counter()

    def small(difference: int) -> bool:
        return 0 < difference < minimum

    for i, group in enumerate(groups):
        if i in hidden or not group.count:
            continue
        levels: dict[tuple[str, str], list[int]] = {}
        for j in inside[i]:
            if j in hidden or not groups[j].count:
                continue
            levels.setdefault(groups[j].level(), []).append(j)
            if small(group.count - groups[j].count):
                blame.update((i, j))
        for members in levels.values():
            if len(members) > 1 and small(group.count - sum(groups[j].count for j in members)):
                blame.update((i, *members))
    return blame


def hide(value: KpiValue, reason: str, minimum: int) -> KpiValue:
    return replace(value, value=None, count=None, excluded=None, reason=reason.format(n=minimum))
