"""Backtests: synchronous runs and their stored results."""
