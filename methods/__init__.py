"""Built-in token reduction methods, one file each (imported by the registry on first use)."""
