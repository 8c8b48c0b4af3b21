"""Asynchronous tasks (backtests, PnL attributions)."""
