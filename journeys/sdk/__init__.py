"""The producer SDK and the query API's client, for code that sends touchpoints or asks the ledger."""
