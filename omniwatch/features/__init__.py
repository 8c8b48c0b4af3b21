"""Point-in-time feature computation (pure pandas; the assets call it)."""
