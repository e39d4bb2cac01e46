"""The Vtiger 8.2 webservice emulator (query, sync, create/revise); `emulator` assembles it."""
