"""Bar charts: revenue by rep, goal progress with pace, the NPS histogram and eNPS by group.

Names of reps and teams come from the CRM: they pass through `svg.label`, which escapes them and
sets right-to-left text (Persian) the right way round.
"""

from __future__ import annotations

from markupsafe import Markup

from kpisync.formats import show_value
from kpisync.report.charts import LINE, MUTED, Chart
from kpisync.report.content import Distribution, GoalLine, RepRow
from kpisync.report.svg import document, el, label

DETRACTOR, PASSIVE, PROMOTER = "#dc2626", "#f59e0b", "#16a34a"
STATUS_COLOURS = {
    "achieved": PROMOTER,
    "on track": LINE,
    "off pace": PASSIVE,
    "missed": DETRACTOR,
    "no data": "#94a3b8",
}
TRACK = "#e2e8f0"
WIDTH = 640


def heading(text: str) -> Markup:
    return label(12, 22, text, size=15, fill="#0f172a", weight="600")


def shorten(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def rep_chart(rows: tuple[RepRow, ...], currency: str) -> Chart:
    """Revenue won in the period by rep, largest first."""
    row_h, top, name_w = 26, 40, 190
    height = top + row_h * max(len(rows), 1) + 12
    best = max((r.revenue or 0.0 for r in rows), default=0.0) or 1.0
    bar_w = WIDTH - name_w - 130
    parts = [heading("Revenue won by rep")]
    for index, row in enumerate(rows):
        y = top + index * row_h
        width = bar_w * max(row.revenue or 0.0, 0.0) / best
        parts.append(label(name_w - 8, y + 16, shorten(row.name), anchor="end", size=12))
        parts.append(
            el(
                "rect",
                el("title", f"{row.name}: {show_value(row.revenue, 'money', currency)}"),
                x=name_w,
                y=y + 4,
                width=max(width, 1.0),
                height=row_h - 8,
                rx=3,
                fill=LINE,
                class_="bar",
                data_value=row.revenue or 0,
            )
        )
        parts.append(
            label(
                name_w + width + 6,
                y + 16,
                show_value(row.revenue, "money", currency),
                size=11,
                fill=MUTED,
            )
        )
    if not rows:
        parts.append(
            label(
                WIDTH / 2, top + 14, "no rep has values in this period", anchor="middle", fill=MUTED
            )
        )
    return Chart(
        "leaderboard",
        "Revenue won by rep",
        document(
            WIDTH,
            height,
            *parts,
            name="leaderboard",
            title="Revenue won by rep",
            data_points=len(rows),
        ),
    )


def goal_chart(goals: tuple[GoalLine, ...], currency: str) -> Chart:
    """One bar per goal: progress to the target, a tick where the pace projects it, the status."""
    row_h, top, left, bar_w = 62, 40, 12, WIDTH - 170
    height = top + row_h * max(len(goals), 1) + 8
    parts = [heading("Goals: progress and pace")]
    for index, line in enumerate(goals):
        parts += goal_row(line, top + index * row_h, left, bar_w, currency)
    if not goals:
        parts.append(
            label(
                WIDTH / 2,
                top + 14,
                "no goals configured ([[metrics.goals]])",
                anchor="middle",
                fill=MUTED,
            )
        )
    return Chart(
        "goals",
        "Goals",
        document(
            WIDTH,
            height,
            *parts,
            name="goals",
            title="Goals: progress and pace",
            data_points=len(goals),
        ),
    )


def goal_row(line: GoalLine, y: float, left: float, bar_w: float, currency: str) -> list[Markup]:
    s, goal = line.status, line.status.goal
    scale = max(1.0, s.progress or 0.0, (s.pace or 0.0) / goal.target if goal.target else 0.0)
    fill = bar_w * min(max(s.progress or 0.0, 0.0) / scale, 1.0)
    colour = STATUS_COLOURS.get(s.status, MUTED)
    target_x = left + bar_w / scale
    text = (
        f"{show_value(s.actual, line.unit, currency)} of "
        f"{show_value(goal.target, line.unit, currency)}"
    )
    parts = [
        label(left, y + 12, f"{goal.name} \u2014 {line.title}", size=12, weight="600"),
        el("rect", x=left, y=y + 18, width=bar_w, height=14, rx=4, fill=TRACK),
        el(
            "rect",
            el("title", text),
            x=left,
            y=y + 18,
            width=max(fill, 0.5),
            height=14,
            rx=4,
            fill=colour,
            class_="bar",
            data_value=s.progress or 0,
        ),
        el(
            "line",
            x1=target_x,
            x2=target_x,
            y1=y + 14,
            y2=y + 36,
            stroke="#0f172a",
            stroke_width=1.5,
        ),
        label(left + bar_w + 10, y + 30, s.status, size=12, fill=colour, weight="600"),
        label(left, y + 53, text + pace_note(line, currency), size=10, fill=MUTED),
    ]
    if s.pace is not None and goal.target:
        pace_x = left + bar_w * min(s.pace / goal.target / scale, 1.0)
        parts.append(
            el(
                "path",
                el("title", "pace: " + show_value(s.pace, line.unit, currency)),
                d=f"M{pace_x:.1f},{y + 33:.1f} l-5,7 h10 z",
                fill="#0f172a",
                class_="pace",
            )
        )
    return parts


def pace_note(line: GoalLine, currency: str) -> str:
    s = line.status
    if s.reason:
        return f" \u00b7 {s.reason}"
    if s.pace is None:
        return ""
    progress = f" ({s.progress:.0%})" if s.progress is not None else ""
    return f"{progress} \u00b7 pace {show_value(s.pace, line.unit, currency)}"


def nps_chart(distribution: Distribution | None) -> Chart:
    """Answers by score 0..10, coloured detractor, passive, promoter."""
    height, top, base, left, slot = 240, 44, 200, 40, 52
    parts = [heading("NPS answers by score")]
    counts = distribution.counts if distribution else ()
    most = max(counts, default=0) or 1
    for score, count in enumerate(counts):
        h = (base - top - 14) * count / most
        colour = DETRACTOR if score <= 6 else PASSIVE if score <= 8 else PROMOTER
        x = left + score * slot
        parts.append(
            el(
                "rect",
                el("title", f"score {score}: {count} answers"),
                x=x + 6,
                y=base - h,
                width=slot - 12,
                height=max(h, 0.5),
                fill=colour,
                class_="bar",
                data_value=count,
            )
        )
        parts.append(label(x + slot / 2, base + 16, str(score), anchor="middle", fill=MUTED))
        if count:
            parts.append(label(x + slot / 2, base - h - 4, str(count), anchor="middle", size=10))
    if not counts:
        parts.append(
            label(WIDTH / 2, 120, "no NPS answer in this period", anchor="middle", fill=MUTED)
        )
    return Chart(
        "nps",
        "NPS answers by score",
        document(
            WIDTH,
            height,
            *parts,
            name="nps",
            title="NPS answers by score",
            data_points=sum(1 for c in counts if c),
        ),
    )


def enps_chart(groups: tuple[Distribution, ...], minimum: int) -> Chart:
    """Detractors, passives and promoters per group; hidden groups say why, with no number."""
    row_h, top, name_w, bar_w = 30, 44, 150, WIDTH - 150 - 80
    height = top + row_h * max(len(groups), 1) + 28
    parts = [heading("eNPS by group")]
    for index, group in enumerate(groups):
        y = top + index * row_h
        name = "Whole organisation" if group.grain == "org" else group.key
        parts.append(label(name_w - 8, y + 17, shorten(name, 22), anchor="end", size=12))
        if not group.counts:
            parts.append(
                label(
                    name_w,
                    y + 17,
                    group.reason or "hidden",
                    size=11,
                    fill=MUTED,
                    class_="hidden-group",
                )
            )
            continue
        x = float(name_w)
        for share, colour, what in zip(
            group.shares,
            (DETRACTOR, PASSIVE, PROMOTER),
            ("detractors", "passives", "promoters"),
            strict=True,
        ):
            parts.append(
                el(
                    "rect",
                    el("title", f"{name}: {share:.0%} {what}"),
                    x=x,
                    y=y + 5,
                    width=max(bar_w * share, 0.0),
                    height=row_h - 10,
                    fill=colour,
                    class_="bar",
                    data_value=f"{share:.4f}",
                )
            )
            x += bar_w * share
        parts.append(
            label(
                name_w + bar_w + 8, y + 17, show_value(group.score, "score"), size=12, weight="600"
            )
        )
    parts.append(
        label(
            12,
            height - 10,
            f"Groups with fewer than {minimum} answers are never shown.",
            size=10,
            fill=MUTED,
        )
    )
    shown = sum(1 for g in groups if g.counts)
    return Chart(
        "enps",
        "eNPS by group",
        document(WIDTH, height, *parts, name="enps", title="eNPS by group", data_points=shown),
    )
