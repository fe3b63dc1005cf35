"""Stage 2, journeys and rules: the stage, its stored segments and memory, merges, splits and erasure."""
