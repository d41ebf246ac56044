"""Built-in tasks, corruptions, length buckets and clip lengths (lengths.py), one file each (found and imported by the registry
on first use: a new one is a new file). May import: core, audio, metrics (a task names its metric)."""
