"""People's handling of flags: acknowledging, assigning, noting, resolving by hand, snoozing."""
