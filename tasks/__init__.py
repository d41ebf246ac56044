"""Built-in tasks, corruptions and length buckets (imported by the registry on first use).
May import: core, audio."""
