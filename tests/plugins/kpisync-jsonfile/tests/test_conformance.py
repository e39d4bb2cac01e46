"""kpisync's connector contract, run on this connector by kpisync's own conformance suite."""

from kpisync.conformance import ConnectorConformance


class TestJsonFileConnector(ConnectorConformance):
    """Every test of the contract, on the subject of conftest.py."""
