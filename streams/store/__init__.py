"""Processor state: the RocksDB store with its batch overlay, and the key space it holds."""
