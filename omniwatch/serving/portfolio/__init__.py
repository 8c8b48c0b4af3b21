"""portfolio/score and portfolio/rebalance, and the rollout blend they share with signals."""
