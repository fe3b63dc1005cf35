"""`journeys bench` and synthetic load: development tooling, never imported by the product."""
