"""Where the tokens go, with the silent share (issue 24 item 5).

    python benchmarks/token_placement.py RESULTS [RESULTS ...] [--keep 0.5 0.7] [--markdown] [--no-silence]
    python benchmarks/token_placement.py OFF_THE_SHELF --aware AWARE [AWARE ...] [--markdown] [--no-silence]

Prints the report's "where the tokens go" section (prunebench.analysis.token_placement_report) for
each results folder, with the share of kept tokens in digital silence filled in: the clean clips of
each task the records name are read again through the task's own loader and their 25 ms frames below
-80 dBFS found (prunebench.data.silence, the definition of `per_clip.silent_fraction`). Reading the
400 clips of an ESC-50 fold takes a few seconds; no model runs. Records of length buckets or clips
at their own lengths get no silent share (their crop is not redone here).

With `--aware`: one off-the-shelf folder against pruning-aware folders (one method each,
docs/pruning-aware.md), prunebench.analysis.placement_regimes's table: per method, the placement and
the clean-vs-noisy Jaccard in both regimes, and how far training moved the clean selection.
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List


def silence_for(records) -> Dict[str, Dict[str, List[bool]]]:
    from prunebench.data.silence import task_silence

    out: Dict[str, Dict[str, List[bool]]] = {}
    for r in records:
        if r.ok and r.corruption is None and r.bucket is None and r.task_id not in out:
            out[r.task_id] = task_silence(r.task, r.task_params, r.clips.ids, progress=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+")
    p.add_argument("--keep", type=float, nargs="*", help="only these keep rates (the baseline always)")
    p.add_argument("--markdown", action="store_true", help="tables as GitHub markdown (docs/results.md)")
    p.add_argument("--no-silence", action="store_true", help="do not read the audio")
    p.add_argument("--aware", nargs="+", help="pruning-aware folders, compared with the one RESULTS folder (off the shelf)")
    args = p.parse_args()
    from prunebench.analysis.token_placement_report import placement_section
    from prunebench.core.errors import PrunebenchError
    from prunebench.records.record import load_results

    try:
        if args.aware:
            return regimes(args)
        for folder in args.results:
            records = load_results(folder)
            silence = None if args.no_silence else silence_for(records)
            print(f"# {folder}")
            print("\n".join(placement_section(records, silence, args.keep, args.markdown)))
            print()
    except PrunebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def regimes(args: argparse.Namespace) -> int:
    from prunebench.analysis.placement_regimes import compare_placement, regime_table
    from prunebench.analysis.pruning_aware import read_aware
    from prunebench.core.errors import ConfigError
    from prunebench.records.record import Record

    if len(args.results) != 1:
        raise ConfigError(f"--aware compares one off-the-shelf folder, got {len(args.results)}")
    off = [r for r in Record.read_folder(args.results[0]) if r.ok]
    silence = None if args.no_silence else silence_for(off)
    print(regime_table(compare_placement(off, read_aware(args.aware), silence), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
