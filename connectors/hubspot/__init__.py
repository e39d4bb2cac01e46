"""The HubSpot connector; see connectors.hubspot.connector."""

from connectors.hubspot.connector import HubSpotConnector, HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
