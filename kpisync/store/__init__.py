"""The local SQL store: the canonical tables, page writes, upserts, purges, revisions, upkeep."""
