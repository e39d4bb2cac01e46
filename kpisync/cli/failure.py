"""How a command fails: one line on stderr (a JSON line under --log-json) and the exit code of
the README's table; --debug adds the traceback. The dispatcher wraps every command in
`friendly`, so a command only raises kpisync errors."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, NoReturn, TypeVar

import typer
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from kpisync.errors import Interrupted, KpisyncError
from kpisync.output import MODE, stderr_console
from kpisync.secrets import mask
from kpisync.store.database import store_error

F = TypeVar("F", bound=Callable[..., Any])
errors = stderr_console()


def friendly(command: F) -> F:
    """Turn every failure into one line on stderr (a JSON line under --log-json) and the exit
    code of the README's table; --debug adds the traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KpisyncError as error:
            fail(error.message, error.hint, error.exit_code)
        except DBAPIError as error:  # the store itself failed: corrupt, read-only, full, gone
            problem = store_error(error)
            fail(problem.message, problem.hint, problem.exit_code)
        except BrokenPipeError:  # `kpisync kpis --csv | head -1`: the reader had enough
            quiet_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            fail(
                "interrupted",
                "a sync carries on from its last committed page when run again",
                Interrupted.exit_code,
            )
        except Exception as error:  # a bug: still one line, the traceback with --debug
            fail(
                f"unexpected error: {type(error).__name__}: {error}",
                "run again with --debug for the traceback, and report it",
                1,
            )

    return wrapper  # type: ignore[return-value]


def fail(message: str, hint: str | None, exit_code: int) -> NoReturn:
    """Print the failure (and with --debug the traceback being handled) and exit."""
    message = mask(message).strip().replace("\n", " ")
    trace = mask(traceback.format_exc()) if MODE.debug else None
    if MODE.log_json:
        json_line(
            "error",
            message,
            fix=mask(hint) if hint else None,
            exit_code=exit_code,
            **({"traceback": trace} if trace else {}),
        )
    else:
        if trace:
            print(trace.rstrip(), file=sys.stderr)
        errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        if hint:
            errors.print(f"  fix: {mask(hint)}", markup=False, highlight=False)
    raise typer.Exit(exit_code)


def json_line(level: str, message: str, **fields: Any) -> None:
    """One record on stderr as --log-json writes them (kpisync.logs.JsonLines' fields)."""
    entry = {
        "time": datetime.now(UTC).isoformat(),
        "level": level,
        "logger": "kpisync.cli",
        "message": message,
        **fields,
    }
    print(json.dumps(entry, ensure_ascii=False, default=str), file=sys.stderr, flush=True)


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
