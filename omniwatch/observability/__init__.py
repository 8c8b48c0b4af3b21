"""Service level objectives of the serving API and the alerting around them: the SLO arithmetic
(``slo``), where its counts come from (``sources``: Prometheus or the API's own ``/metrics``), the
Dagster resource and settings, and the Alertmanager configuration renderer (``alertmanager``)."""
