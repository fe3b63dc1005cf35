"""Looking back: the events topic read whole, replays with incident reports, rebuilds, live diffs."""
