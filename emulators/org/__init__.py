"""The synthetic org: its vendor-neutral records (`model`), the seeded generator (`generate`,
`vocabulary`) and the exchange rates and quotas added on request (`finance`)."""
