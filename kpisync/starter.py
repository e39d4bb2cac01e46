"""The starter settings.toml that `kpisync init` writes (the same file as the repository's example)."""

from importlib.resources import files

STARTER_SETTINGS = files("kpisync").joinpath("templates/settings.toml").read_text(encoding="utf-8")
