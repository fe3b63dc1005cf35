"""The touchpoint contract: event models, value types and the codec."""
