"""CPU per event of the live stages without a broker: where the time goes, stage by stage."""
