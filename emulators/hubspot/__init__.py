"""The HubSpot emulator (CRM v3/v4 objects, search, properties, OAuth); `emulator` assembles it."""
