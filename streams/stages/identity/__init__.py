"""Ingest's identity work beyond stitching: people's decisions and splits, limits, erasure."""
