"""The static HTML leaderboard: a pure function of a results folder.
May import: core, records, analysis; nothing in prunebench imports it but the command line."""
from prunebench.leaderboard.render import render_leaderboard

__all__ = ["render_leaderboard"]
