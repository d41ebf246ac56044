"""Reading results: robustness comparisons (by clip length: by_length.py), the plain-text report
and run summary. May import: core,
records, metrics."""
