"""Pure privacy decisions: when the ledger forgets a customer by itself (retention); whose a
dead letter is (read leniently, for erasure)."""
