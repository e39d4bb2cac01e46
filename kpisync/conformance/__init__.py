"""The connector conformance suite, shipped with kpisync so that any connector can run it.

A connector author subclasses `ConformanceSubject` (a source they seed and can read back), gives
it through a fixture named `conformance_subject`, and subclasses `ConnectorConformance` in a test
module: pytest then runs the whole contract on it (docs/connector-authors.md). The fixtures and
the `conformance` marker come from the pytest plugin `kpisync.conformance.plugin`, which pytest
loads by itself through the `pytest11` entry point.
"""

import pytest

# Before the suite is imported: its plain asserts then report their values, as in any test file.
pytest.register_assert_rewrite(
    "kpisync.conformance.suite", "kpisync.conformance.subject", "kpisync.conformance.stores"
)

from kpisync.conformance.subject import (  # noqa: E402
    ConformanceSubject,
    ErrorCase,
    Truth,
    WriteCase,
    assert_store_matches,
)
from kpisync.conformance.suite import ConnectorConformance  # noqa: E402

__all__ = [
    "ConformanceSubject",
    "ConnectorConformance",
    "ErrorCase",
    "Truth",
    "WriteCase",
    "assert_store_matches",
]
