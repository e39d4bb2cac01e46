"""A store URL opens in each spelling people copy from their database's console."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from kpisync.errors import ConfigError
from kpisync.store.database import open_store


def spellings(url: str) -> list[str]:
    if url.startswith("sqlite"):
        return [url]
    rest = url.split("://", 1)[1]
    return [f"{scheme}://{rest}" for scheme in ("postgresql+psycopg", "postgresql", "postgres")]


def test_a_store_url_opens_in_every_usual_spelling(store_url: str) -> None:
    for url in spellings(store_url):
        engine = open_store(url)
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM sync_state")).scalar() == 0
            assert engine.dialect.driver in ("pysqlite", "psycopg"), url
        finally:
            engine.dispose()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://kpisync@db/kpisync", "unsupported database 'mysql'"),
        ("not a url", "is not a database URL"),
    ],
)
def test_a_store_url_kpisync_cannot_use_is_named(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        open_store(url)
