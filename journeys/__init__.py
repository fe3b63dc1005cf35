"""journey-ledger's user side: the CLI, the producer SDK, the query API and replay."""
