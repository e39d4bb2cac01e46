"""docs/kpis.md is generated from the KPI registry, and this test fails when it is stale.

Regenerate it after changing a KPI declaration (or the parity test's list of CRMs that cannot hold
a KPI's inputs), from the repository root:

    python -m tests.test_docs_kpis
"""

from __future__ import annotations

import sys
from pathlib import Path

from metrics.catalogue import REGISTRY
from metrics.declaration import Derived, Kpi, Registry
from metrics.holdings import INPUTS
from tests.test_kpi_parity import CANNOT_SERVE, GRAIN_NOT_COMPARABLE, NOT_COMPARABLE

DOC = Path(__file__).resolve().parents[1] / "docs" / "kpis.md"
COMMAND = "python -m tests.test_docs_kpis"
CRMS = {
    "hubspot": "HubSpot",
    "salesforce": "Salesforce",
    "vtiger": "Vtiger",
    "vtiger-stock82": "Vtiger",
}
Gaps = dict[str, tuple[frozenset[str], str]]
TAGS = {
    "now": "moves with time, not only with the CRM's data (computed as of now)",
    "anonymous": "answers are anonymous: never shown for a group under the anonymity minimum",
}


def spelled_out(gaps: Gaps) -> Gaps:
    """The parity test's reasons with "the same" replaced by the reason it refers to."""
    out: Gaps = {}
    last = ""
    for key, (crms, reason) in gaps.items():
        if reason == "the same":
            reason = last
        elif reason.startswith("the same, and "):
            reason = f"{last}; and {reason.removeprefix('the same, and ')}"
        out[key] = (crms, reason)
        last = reason
    return out


def crm_line(
    kpi: Kpi, gaps: Gaps, grain_gaps: dict[tuple[str, str], tuple[frozenset[str], str]]
) -> str:
    lacking, reason = gaps.get(kpi.name, (frozenset(), ""))
    names = sorted({CRMS[crm] for crm in lacking})
    unheld, needed = CANNOT_SERVE.get(kpi.name, (frozenset(), ""))
    missing = sorted({CRMS[crm] for crm in unheld})
    holding = [
        name
        for name in ("HubSpot", "Salesforce", "Vtiger")
        if name not in names and name not in missing
    ]
    line = ", ".join(holding)
    if missing:
        line += f"; {' and '.join(missing)}: no data ({INPUTS[needed].reason})"
    if names:
        line += f"; {' and '.join(names)} not the same way: {reason}"
    for (name, grain), (crms, why) in grain_gaps.items():
        if name == kpi.name:
            line += (
                f"; by {grain}, {' and '.join(sorted({CRMS[c] for c in crms}))} "
                f"not the same way: {why}"
            )
    return line


def section(
    kpi: Kpi, gaps: Gaps, grain_gaps: dict[tuple[str, str], tuple[frozenset[str], str]]
) -> list[str]:
    better = {
        "higher": "higher is better",
        "lower": "lower is better",
        "neutral": "neither higher nor lower is better",
    }[kpi.direction]
    lines = [
        f"### `{kpi.name}`: {kpi.title}",
        "",
        kpi.definition,
        "",
        f"- Unit: {kpi.unit}; {better}",
        f"- Grains: {', '.join(kpi.grains)}",
        f"- Periods: {', '.join(kpi.periods)}; a record's period is set by {kpi.period_date}",
        f"- Measure: {type(kpi.measure).__name__.lower()}"
        + (
            f" of {', '.join(f'`{name}`' for name in kpi.measure.inputs)}"
            if isinstance(kpi.measure, Derived) and kpi.measure.inputs
            else ""
        )
        + (f" over the staged `{kpi.fact}` facts" if kpi.fact else ""),
        f"- No data when: {kpi.empty_reason}",
        f"- CRMs that hold its inputs: {crm_line(kpi, gaps, grain_gaps)}",
    ]
    if kpi.notes:
        lines.append(f"- Notes: {kpi.notes}")
    lines += [f"- {TAGS.get(tag, tag)}" for tag in kpi.tags]
    return [*lines, ""]


def render(
    registry: Registry, gaps: Gaps, grain_gaps: dict[tuple[str, str], tuple[frozenset[str], str]]
) -> str:
    kpis = list(registry)
    gaps = spelled_out(gaps)
    lines = [
        "# KPI reference",
        "",
        (
            f"Generated from the KPI registry (`metrics.catalogue.REGISTRY`) by `{COMMAND}`; "
            "do not edit by hand. tests/test_docs_kpis.py fails when this file is stale."
        ),
        (
            '"CRMs that hold its inputs" comes from the parity test (tests/test_kpi_parity.py): '
            "one synthetic org synced from each CRM's emulator gives the same value, except where "
            "a CRM does not hold the inputs the same way."
        ),
        "",
        (
            f'{len(kpis)} KPIs. An empty denominator or a missing input gives "no data" with a '
            "reason, never 0."
        ),
        "",
        "| KPI | title | unit | family | grains |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{k.name}` | {k.title} | {k.unit} | {k.family} | {', '.join(k.grains)} |" for k in kpis
    ]
    lines.append("")
    for family in dict.fromkeys(k.family for k in kpis):
        lines += [f"## {family.capitalize()}", ""]
        for kpi in kpis:
            if kpi.family == family:
                lines += section(kpi, gaps, grain_gaps)
    return "\n".join(lines).rstrip("\n") + "\n"


def current() -> str:
    return render(REGISTRY, NOT_COMPARABLE, GRAIN_NOT_COMPARABLE)


def test_docs_kpis_is_current() -> None:
    assert DOC.exists(), f"docs/kpis.md is missing: run `{COMMAND}`"
    assert DOC.read_text(encoding="utf-8") == current(), (
        f"docs/kpis.md is stale (a KPI declaration changed): run `{COMMAND}` and commit it"
    )


def test_every_kpi_and_every_parity_exception_is_in_the_reference() -> None:
    text = current()
    assert all(f"### `{kpi.name}`" in text for kpi in REGISTRY)
    assert all(reason != "the same" for _, reason in spelled_out(NOT_COMPARABLE).values())
    assert text.count("not the same way") == len(NOT_COMPARABLE) + len(GRAIN_NOT_COMPARABLE)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(current(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
