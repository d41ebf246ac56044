"""Effective robustness with the line fitted through a subset of the testbed: the members cut after
the given blocks only (the report fits all of them). A sensitivity check: the pruned models are
full-depth encoders, and a testbed that mixes depths may not share their line.

    python benchmarks/effective_by_blocks.py results/whisper-esc50-effective --blocks 4
"""
from __future__ import annotations

import argparse

from prunebench.analysis.effective import effective_robustness
from prunebench.analysis.effective_report import effective_section
from prunebench.records.record import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--blocks", type=int, nargs="+", required=True, help="keep the members cut after these blocks")
    args = parser.parse_args()
    records = [r for r in load_results(args.results, testbed=True)
               if r.testbed is None or r.testbed.block in args.blocks]
    lines, answers = effective_section(effective_robustness(records))
    print(f"testbed: the members cut after block(s) {', '.join(map(str, args.blocks))} only")
    print("\n".join(answers + lines))


if __name__ == "__main__":
    main()
