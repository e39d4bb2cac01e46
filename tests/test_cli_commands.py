"""The command line's table of commands (kpisync.cli.commands) against the commands themselves:
`kpisync --help` is drawn from the table without loading any command, so the table must say
what the commands say, and loading the CLI must not load what only the commands need."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

from typer.testing import CliRunner

from kpisync.cli import app
from kpisync.cli.commands import COMMANDS
from kpisync.cli.dispatch import registered

# What only a command needs: none of it may load for `kpisync --help`.
HEAVY = (
    "sqlalchemy",
    "pydantic",
    "alembic",
    "metrics",
    "writeback",
    "connectors",
    "kpisync.store",
    "kpisync.report",
    "emulators",
    "kpisync.config",
    "kpisync.cli.failure",
    "kpisync.cli.sources",
)
COMMAND_MODULES = sorted(
    {declared.module for declared in COMMANDS if not declared.module.startswith("kpisync.cli.")}
)


def summary(help_text: str | None) -> str:
    """The first paragraph of a command's help on one line, as the help listing shows it."""
    return " ".join(inspect.cleandoc(help_text or "").split("\n\n")[0].split())


def test_every_declared_line_is_the_first_paragraph_of_its_commands_help() -> None:
    for declared in COMMANDS:
        command = registered(declared.module).commands[declared.name]
        assert summary(command.help) == declared.help, declared.name


def test_every_module_registers_exactly_the_commands_the_table_gives_it() -> None:
    for module in {declared.module for declared in COMMANDS}:
        named = {declared.name for declared in COMMANDS if declared.module == module}
        assert set(registered(module).commands) == named, module


def loaded_modules(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_top_level_help_loads_no_command_and_lists_them_all() -> None:
    code = (
        "import contextlib, io, sys\nfrom kpisync.cli import app\nsys.argv = ['kpisync', "
        "'--help']\nshown = io.StringIO()\nwith contextlib.redirect_stdout(shown):\n"
        "    try:\n        app()\n    except SystemExit as done:\n"
        "        assert done.code == 0, done.code\n"
        "assert all(d.name in shown.getvalue() for d in __import__("
        "'kpisync.cli.commands').cli.commands.COMMANDS)"
    )
    loaded = loaded_modules(code)
    heavy = [name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_no_command_module_loads_the_cli() -> None:
    loaded = loaded_modules("\n".join(f"import {module}" for module in COMMAND_MODULES))
    assert [
        name for name in loaded if name == "kpisync.cli" or name.startswith("kpisync.cli.")
    ] == []


def test_a_mistyped_command_is_named_with_the_nearest_one_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["compte"])
    assert result.exit_code == 2
    assert "No such command 'compte'. Did you mean 'compute'?" in result.output


def test_a_command_fails_as_one_line_and_its_exit_code() -> None:
    """The dispatcher puts `friendly` around every command, those of the feature modules too."""
    result = CliRunner().invoke(app, ["kpis", "--period", "fortnight"])
    assert result.exit_code == 2  # ConfigError's code in the README's table
    assert "error: unknown period 'fortnight'" in result.output
    assert "Traceback" not in result.output
