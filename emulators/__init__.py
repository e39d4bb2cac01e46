"""Loopback emulators of the HubSpot, Salesforce and Vtiger APIs, and the synthetic org they serve.

Beside the product, not part of it: `kpisync demo`, `kpisync sandbox`, the tests and the
benchmarks run them. Nothing here imports kpisync, connectors, metrics or writeback.
"""
