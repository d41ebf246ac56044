"""Built-in token reduction methods, one file each (found and imported by the registry on first use).
May import: core, method: a built-in is written exactly as a third-party plugin would be."""
