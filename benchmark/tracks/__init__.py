"""Tracks: versioned protocol definitions (model and weights hash, data and its fingerprint, folds,
corruptions, operating points, measure settings, protocol version) shipped as YAML in defs/, and
the run configuration a track gives for the published grid or for one submitted method.
May import every layer below it: core .. train, records, run."""
