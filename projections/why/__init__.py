"""Why an event is in its journey: the identifier that linked it, worked out from the journey.

Pure and order-independent, so the offline ledger and the live API give the same answer.
"""

from __future__ import annotations

from projections.why.linked import link_keys, linked_by

__all__ = ["link_keys", "linked_by"]
