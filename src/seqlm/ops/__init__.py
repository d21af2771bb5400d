"""Tooling used by no stage: the reproduction gate, the leaderboard report, the plots page and its
check in Chromium, and the ``seqlm`` command that runs them."""
