"""Model operations: the drift, gate, rollout and rollback rules as plain functions.

Each rule takes data and thresholds and returns a typed ``Decision``; sensors, jobs and API
routes only fetch the data, call a rule and persist what it decided (``omniwatch.promotions``).
Nothing here touches a database, MLflow or HTTP.
"""
