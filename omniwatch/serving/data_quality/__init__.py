"""Data-quality reads and checks."""
