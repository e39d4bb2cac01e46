"""The root command group: lists the commands of kpisync.cli.commands without loading them, and
loads a command's module only when that command is chosen (to run, or for its own --help)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from kpisync.cli.commands import COMMANDS
from kpisync.logs import JsonUsageErrors

DECLARED = {declared.name: declared for declared in COMMANDS}


class LazyGroup(JsonUsageErrors):
    """Holds a placeholder per declared command (its name and help line, enough for the help
    listing, completion and "did you mean"); resolving a name swaps in the real command.
    Usage errors are JSON lines under --log-json, as JsonUsageErrors makes them."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for declared in COMMANDS:
            self.commands.setdefault(
                declared.name, TyperCommand(name=declared.name, help=declared.help)
            )

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name in DECLARED:
            command = registered(DECLARED[name].module).commands[name]
        return name, command, rest


@functools.cache
def registered(module_name: str) -> TyperGroup:
    """The commands that `module_name`'s `register(app)` adds, each one wrapped in `friendly`."""
    # The CLI's only imports at run time, on purpose: a command's module, and the failure
    # handling that knows the store's errors, load when that command is chosen, so that
    # `kpisync --help` loads neither SQLAlchemy nor any feature (docs/decisions/cli-package.md).
    from kpisync.cli.failure import friendly

    module = importlib.import_module(module_name)
    holder = typer.Typer()
    module.register(holder)
    guard(holder, friendly)
    return typer.main.get_group(holder)


def guard(app: typer.Typer, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Wrap every command and group callback of `app`, at any depth, in `wrap`."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = wrap(command.callback)
    if app.registered_callback is not None and app.registered_callback.callback is not None:
        app.registered_callback.callback = wrap(app.registered_callback.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard(group.typer_instance, wrap)
