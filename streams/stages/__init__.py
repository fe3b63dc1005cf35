"""The two processing stages (ingest, journeys) and the batch loop that runs them."""
