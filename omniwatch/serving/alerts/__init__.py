"""Alertmanager notifications over HTTP: the webhook receiver and the stored alerts (``/api/v2/alerts``)."""
