-- The warehouse and MLflow get their own databases beside Dagster's.
CREATE DATABASE omniwatch;
CREATE DATABASE mlflow;
