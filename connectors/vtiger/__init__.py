"""The Vtiger connector; see connectors.vtiger.connector."""

from connectors.vtiger.connector import VtigerConnector, VtigerSettings

__all__ = ["VtigerConnector", "VtigerSettings"]
