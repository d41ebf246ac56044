"""The published board's cost: the results store's size, and the time to render it (median of N).

    python benchmarks/board_render.py [--store DIR] [--runs 5]

Prints the store's size (files, bytes, per track) and each render's wall time; the page is written
to a temporary folder. Timing on a shared machine is noise: report the load (`uptime`) beside it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prunebench.leaderboard.board import STORE, render_board


def size(folder: Path) -> tuple:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(STORE))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = Path(args.store)
    count, total = size(store)
    print(f"results store {store}: {count} files, {total / 1e6:.2f} MB")
    for track in sorted(p for p in store.iterdir() if p.is_dir()):
        n, b = size(track)
        entries = sum(1 for p in track.iterdir() if (p / "entry.json").is_file())
        studies = sum(1 for p in track.iterdir() if (p / "study.json").is_file())
        kind = f"{studies} studies" if studies else f"{entries} entries"
        print(f"  {track.name}: {kind}, {n} files, {b / 1e6:.2f} MB")
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            started = time.perf_counter()
            page = render_board(store, Path(tmp) / "board.html")
            seconds.append(time.perf_counter() - started)
        print(f"page {page.stat().st_size / 1e3:.0f} KB; render {', '.join(f'{s:.2f}' for s in seconds)} s; "
              f"median {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
