"""Data-quality reads and checks, and the human review loop (samples, verdicts, precision)."""
