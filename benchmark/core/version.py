"""prunebench's version, in one place (pyproject.toml reads it from here)."""
VERSION = "0.1.0"
# The protocol version: what a result means (reduction layers, scoring, noise, MAC counting). It is
# part of every record's identity (prunebench.records.identity): raise it when a change makes old
# records incomparable with new ones, and every pair is recomputed rather than resumed.
PROTOCOL = 1
