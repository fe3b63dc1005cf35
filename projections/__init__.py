"""Pure folds: identity stitching, journeys and the contradiction rules. No I/O, no clock."""
