"""The pytest plugin of the conformance suite (entry point `pytest11`): its marker and fixtures.

`conformance_subject` has no default: the connector's own tests define it. `conformance_store_url`
is a fresh SQLite file; a test module may override it (e.g. with a PostgreSQL database).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kpisync.conformance.subject import ConformanceSubject
from kpisync.store.database import open_store


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the kpisync connector contract (kpisync.conformance)"
    )


@pytest.fixture
def conformance_subject() -> ConformanceSubject:
    pytest.fail(
        "define a fixture `conformance_subject` returning your ConformanceSubject "
        "(docs/connector-authors.md)"
    )


@pytest.fixture
def conformance_store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conformance.db'}"


@pytest.fixture
def conformance_engine(conformance_store_url: str) -> Iterator[Engine]:
    engine = open_store(conformance_store_url)
    yield engine
    engine.dispose()
