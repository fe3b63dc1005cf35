"""Kafka plumbing the stages and the API share: records, batched sends, reading a topic."""
