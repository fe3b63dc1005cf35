"""Per-customer crypto-shredding: data keys wrapped by a master key, field encryption, keyed hashes."""
