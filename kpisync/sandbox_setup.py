"""What a sandbox (a CRM emulator run for kpisync to talk to) is made of, besides the emulator.

A sandbox's state folder holds `sandbox.json` (which CRM, the synthetic org's seed and size, the
port, the write-back mapping), the emulator's records (`emulators.state`) and, for
Salesforce, the certificate authority the settings' `ca_bundle` names. The settings written for a
sandbox work with every command: the source, the KPI roles and goals of the synthetic org, and
the write-back mapping into score fields the sandbox's admin has added (HubSpot's are created by
`kpisync fields apply`). The demo writes the same settings for its kept folder.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kpisync.calendars import PERSIAN
from kpisync.demo_crms import DEMO_CRMS, DemoCrm
from kpisync.errors import ConfigError
from writeback import LABEL_PREFIX
from writeback import SCORES as SCORE_SPECS

Mapping = dict[str, dict[str, str]]  # entity -> score -> CRM field
DESCRIPTION_FILE = "sandbox.json"
SPECS = {(spec.entity, spec.name): spec for spec in SCORE_SPECS}
DEMO_SCORES: dict[str, tuple[str, ...]] = {  # what the sandbox's settings write back, per entity
    "account": ("nps_score", "nps_category", "nps_last_answer", "upsell_flag", "upsell_reason"),
    "contact": ("nps_score", "nps_category", "nps_last_answer"),
    "deal": ("days_in_stage", "stalled"),
}
# Neutral stage keys of the synthetic org that the KPI roles name.
REQUIRED_STAGES = ("qualified_to_buy", "presentation_scheduled")
PROPOSAL_STAGES = ("contract_sent",)
TEAM_QUOTA = 60_000  # each team's quota for the synthetic org's last full quarter, in USD


@dataclass
class SandboxFolder:
    """The description kept in a state folder's sandbox.json."""

    crm: str
    seed: int
    deals: int
    port: int
    mapping: Mapping = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> SandboxFolder | None:
        path = folder / DESCRIPTION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(
                str(data["crm"]),
                int(data["seed"]),
                int(data["deals"]),
                int(data["port"]),
                {e: dict(m) for e, m in dict(data.get("mapping") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(
                f"{path} is not a sandbox description ({error})",
                hint="point --state at a folder `kpisync sandbox serve` or "
                "`kpisync demo --keep` made, or at an empty one",
            ) from error

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DESCRIPTION_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", "utf-8")


def demo_crm(name: str) -> DemoCrm:
    crm = DEMO_CRMS.get(name.lower())
    if crm is None:
        raise ConfigError(
            f"--crm {name!r}: no such sandbox CRM", hint=f"use one of {', '.join(DEMO_CRMS)}"
        )
    return crm


def ca_home() -> Path:
    """Where a Salesforce sandbox without a state folder keeps its certificate authority."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "kpisync" / "sandbox-salesforce"


def add_score_fields(crm: DemoCrm, emulator: Any) -> Mapping:
    """Add the score fields on the emulator as the CRM's admin would (HubSpot's are created by
    kpisync itself); the write-back mapping into them."""
    return {
        entity: {
            score: crm.add_field(
                emulator,
                entity,
                score,
                SPECS[entity, score].kind,
                LABEL_PREFIX + SPECS[entity, score].title,
                SPECS[entity, score].options,
            )
            for score in scores
        }
        for entity, scores in DEMO_SCORES.items()
    }


def toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def writeback_tables(source: str, mapping: Mapping) -> str:
    return "".join(
        f"\n[writeback.{source}.{entity}]\n"
        + "".join(f'{score} = "{name}"\n' for score, name in scores.items())
        for entity, scores in mapping.items()
    )


def exports(crm: DemoCrm) -> str:
    """The shell lines that set the sandbox's demo credentials."""
    return "\n".join(
        f"export {name}={shlex.quote(value)}" for name, value in crm.credentials().items()
    )


def settings_text(
    crm: DemoCrm, emulator: Any, store: Path, mapping: Mapping, locale: str = "en"
) -> str:
    """settings.toml for the emulator at `emulator.base_url`, its store at `store`."""
    required = toml_list(crm.stage_name(emulator, key) for key in REQUIRED_STAGES)
    proposal = toml_list(crm.stage_name(emulator, key) for key in PROPOSAL_STAGES)
    teams = sorted({rep.team for rep in emulator.org.reps if rep.team})
    # locale fa: Persian text and the Solar Hijri calendar; the goals' quarter is then Q2 1405
    persian = locale == "fa"
    quarter = PERSIAN.period_start(date(2026, 7, 1), "quarter") if persian else date(2026, 7, 1)
    team_quotas = "".join(
        f'\n[[metrics.quotas]]\nperiod = "quarter"\nstart = "{quarter}"\n'
        f'amount = {TEAM_QUOTA}\nteam = "{team}"\n'
        for team in teams
    )
    calendar = (
        'calendar = "persian"\nlocale = "fa"\ntimezone = "Asia/Tehran"'
        if persian
        else 'timezone = "Europe/Warsaw"'
    )
    secrets = ", ".join(crm.credentials())
    return f"""# kpisync on the {crm.name} sandbox (`kpisync sandbox serve`). Its demo credentials come
# from the environment ({secrets}): `kpisync sandbox settings` prints the lines to set them.
[kpisync]
store = "sqlite:///{store}"
{calendar}
currency = "USD"

[sources.{crm.source}]
{crm.source_settings(emulator)}

[sources.{crm.source}.schedule]  # `kpisync run`: sync, compute, write-back every 15 minutes
interval_minutes = 15

# The synthetic org keeps no exchange rates: these convert its EUR, GBP and PLN deals to USD.
[metrics]
currency_rates = {{ EUR = 1.08, GBP = 1.27, PLN = 0.25 }}

# What the synthetic org's fields mean for the KPIs: its margin is a share of the amount.
[metrics.roles]
margin = "fraction"
segment_field = "{crm.segment_field(emulator)}"
qualified_lead_statuses = {toml_list(crm.qualified_statuses(emulator))}
required_stages = {required}
proposal_stages = {proposal}

# Goals for the synthetic org's last full quarter: `kpisync goals` and the report show them.
[[metrics.goals]]
name = "Q3 revenue"
kpi = "sales_volume"
period = "quarter"
start = "{quarter}"
target = 120000

[[metrics.goals]]
name = "Q3 win rate"
kpi = "win_rate"
period = "quarter"
start = "{quarter}"
target = 0.30

# Spend and quotas live outside the CRM; these give the last full quarter a CAC and each team
# a quota.
[[metrics.spend]]
period = "quarter"
start = "{quarter}"
amount = 45000
{team_quotas}
# Which score lands in which field of the sandbox's records (`kpisync fields plan {crm.source}`).
{writeback_tables(crm.source, mapping)}"""
