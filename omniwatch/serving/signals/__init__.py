"""signals/generate: directions from the blended forecasts."""
