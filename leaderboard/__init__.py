"""The static HTML leaderboard: a pure function of a results folder.
May import: core, records, analysis; nothing in benchmark imports it but the command line."""
from benchmark.leaderboard.render import render_leaderboard

__all__ = ["render_leaderboard"]
