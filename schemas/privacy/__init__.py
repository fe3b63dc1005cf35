"""What in an event is personal: the data the per-customer keys protect (issue 16)."""
