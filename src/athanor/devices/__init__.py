"""ophyd devices over athanor's drivers: what the RunEngine and the plans see."""
