"""The Salesforce emulator (REST, SOQL, Bulk 2.0, OAuth over TLS); `emulator` assembles it."""
