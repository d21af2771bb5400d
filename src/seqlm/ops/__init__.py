"""Tooling used by no stage: the reproduction gate, the leaderboard report, the plots page."""
