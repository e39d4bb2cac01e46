"""Every top-level command: its name, the line `kpisync --help` shows for it, and the module that
registers it. `kpisync --help` is drawn from this table alone; a command's module (and what it
imports: the store, SQLAlchemy, the KPI engine, the emulators) is loaded only when that command
runs or shows its own help (kpisync.cli.dispatch). tests/test_cli_commands.py keeps each line
equal to the help of the command its module registers.

A new command: `register(app)` in its feature's module adds it to `app`; add its row here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Declared:
    """A command as the top-level help lists it, and where it is defined."""

    name: str
    help: str
    module: str  # its `register(app: typer.Typer)` adds a command or group called `name`


COMMANDS: tuple[Declared, ...] = (
    Declared("init", "Write a starter settings.toml.", "kpisync.cli.start"),
    Declared(
        "check",
        "Pre-flight a source: auth, reachability, permissions, allowance.",
        "kpisync.cli.sources",
    ),
    Declared(
        "discover",
        "List the source's objects and fields, custom ones included, and suggest fields for roles.",
        "kpisync.cli.sources",
    ),
    Declared("sync", "Incrementally sync one source, or all of them.", "kpisync.cli.sources"),
    Declared(
        "status",
        "Per source: last run, duration, counts, API usage, errors, next run, budget and alerts.",
        "kpisync.cli.status",
    ),
    Declared(
        "demo",
        "Run the whole loop on a built-in CRM emulator: no account needed.",
        "kpisync.cli.start",
    ),
    Declared(
        "compute",
        "Compute every KPI now, store the values and send alerts for new crossings.",
        "metrics.commands",
    ),
    Declared(
        "kpis",
        "Show stored KPI values of one period (the latest complete one unless "
        "--at), or every snapshot of one KPI (--history). Machine forms carry each "
        "value's unit.",
        "metrics.commands",
    ),
    Declared(
        "goals", "Progress, pace and status of every goal in settings.toml.", "metrics.commands"
    ),
    Declared(
        "run",
        "Run the scheduled pipelines (sync, compute, write-back) until stopped.",
        "kpisync.run_command",
    ),
    Declared("db", "The store: schema, check, backup.", "kpisync.cli.store"),
    Declared(
        "surveys", "Survey answers (NPS, eNPS) from survey tools' exports.", "metrics.commands"
    ),
    Declared("fields", "The CRM fields write-back manages.", "writeback.commands"),
    Declared("writeback", "Write scores onto CRM records.", "writeback.commands"),
    Declared(
        "report", "The HTML report with charts, and its e-mail delivery.", "kpisync.report.commands"
    ),
    Declared(
        "sandbox",
        "Run a CRM emulator (HubSpot, Salesforce, Vtiger) to try kpisync on.",
        "kpisync.sandbox_command",
    ),
)
