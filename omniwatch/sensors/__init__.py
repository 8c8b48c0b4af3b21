"""Sensors: the model-operations loop (gate, rollout, rollback, drift) and pipeline health."""
