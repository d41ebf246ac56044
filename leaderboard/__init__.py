"""The static HTML leaderboard: a pure function of a results folder."""
from .render import render_leaderboard

__all__ = ["render_leaderboard"]
