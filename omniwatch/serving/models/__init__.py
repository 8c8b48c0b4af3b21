"""Model operations over HTTP: drift, gate, rollout, rollback and the audit log (``/api/v2/models``)."""
