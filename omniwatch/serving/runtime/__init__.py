"""Runtime shared by the serving features (clocks, freshness); no routes here."""
