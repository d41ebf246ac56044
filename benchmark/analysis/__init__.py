"""Reading results: robustness comparisons, the plain-text report and run summary. May import: core,
records, metrics."""
