"""Reading results: robustness comparisons (by clip length: by_length.py), where the kept tokens lie
(token_placement.py, on the patch grid of patch_grid.py), the plain-text report and run summary,
pruning-aware runs against off the shelf (pruning_aware.py; where their tokens go: placement_regimes.py).
May import: core, records, metrics."""
