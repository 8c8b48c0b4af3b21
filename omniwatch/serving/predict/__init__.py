"""Predictions and their explanations."""
