"""Pure privacy decisions: when the ledger forgets a customer by itself (retention)."""
