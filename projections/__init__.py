"""Pure folds: identity stitching, journeys and the contradiction detectors. No I/O, no clock."""
