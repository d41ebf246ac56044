"""Robustness per true length from one run of a task at its clips' own lengths (issue 25 item 5).

    python benchmarks/by_length.py RESULTS [--split-seconds 2.5] [--json OUT]

Prints each (method, noise) comparison's flip effect for short and for long clips
(prunebench.analysis.by_length), split at --split-seconds (default: each comparison's median);
where the run has a testbed (`testbed:` in its config), each method's effective robustness on the
short and on the long clips too (the line refitted on each part).
"""
from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--split-seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args()
    from prunebench.analysis.by_length import by_length, effective_by_length, format_by_length, format_effective_by_length
    from prunebench.records.record import load_results

    records = load_results(args.results, testbed=True)
    rows = by_length(records, args.split_seconds, args.seed)
    if not rows:
        print(f"{args.results}: no comparison whose records hold clip lengths (run a task with lengths:)")
        return 2
    print(format_by_length(rows))
    effective, notes = effective_by_length(records, args.split_seconds, args.seed)
    print("\n" + (format_effective_by_length(effective) if effective else "no testbed in these records: no effective robustness"))
    for note in notes:
        print(f"note: {note}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"flip": [r.to_dict() for r in rows], "effective": [r.to_dict() for r in effective]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
