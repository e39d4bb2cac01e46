"""The Salesforce connector; see connectors.salesforce.connector."""

from connectors.salesforce.connector import SalesforceConnector, SalesforceSettings

__all__ = ["SalesforceConnector", "SalesforceSettings"]
