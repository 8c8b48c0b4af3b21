"""execution/*: from forecast to orders through the risk guard, and the audit chain."""
