"""Risk over HTTP: limits, what-if order checks, kill switches and breakers (``/api/v2/risk``)."""
