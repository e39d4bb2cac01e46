"""`python -m kpisync.cli ...`: the same as the `kpisync` command."""

from kpisync.cli import app

app()
