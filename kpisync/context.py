"""What every command needs: the validated settings and the opened store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from kpisync.config import Settings, load_settings
from kpisync.secrets import read_secret
from kpisync.settings_check import check_settings
from kpisync.store.database import open_store


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    engine: Engine


def store_url(settings: Settings) -> str:
    if settings.core.store_env:
        return read_secret(settings.core.store_env, key="kpisync.store_env")
    url = settings.core.store
    if url.startswith("sqlite:///") and settings.path is not None:
        relative = url.removeprefix("sqlite:///")
        if relative and not os.path.isabs(relative):
            url = "sqlite:///" + str((settings.path.parent / relative).resolve())
    return url


def open_context(path: Path) -> AppContext:
    settings = load_settings(path)
    check_settings(settings)
    return AppContext(settings=settings, engine=open_store(store_url(settings)))
