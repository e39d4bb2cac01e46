"""Where settings.toml is: its default path and the environment variable naming another.

Kept apart from kpisync.config so that the command line can name them without loading the
settings models (pydantic), which `kpisync --help` does not need."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PATH = Path("settings.toml")
SETTINGS_ENV = "KPISYNC_SETTINGS"  # where settings.toml is when no --settings is given
