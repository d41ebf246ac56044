"""Figures of the leaderboard page for a results folder: size, Python render time, and the time
headless Chromium takes to show it, against an empty page opened in the same browser.

    python -m prunebench.leaderboard.measure RESULTS_DIR [--repeats 5] [--screenshot FILE.png]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import List

from prunebench.leaderboard.browser import file_url, open_browser, unavailable_reason
from prunebench.leaderboard.render import render_leaderboard

EMPTY_PAGE = "<!DOCTYPE html><html><body><p>empty</p><script>document.documentElement.dataset.renderMs = " \
           "String(Math.round(performance.now())); document.documentElement.dataset.ready = '1';</script></body></html>"


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "leaderboard.html"
        renders = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            render_leaderboard(args.results, page_file)
            renders.append(time.perf_counter() - start)
        size = page_file.stat().st_size
        print(f"page: {size / 1e6:.3f} MB; Python render (load, merge, statistics, HTML): "
              f"median {statistics.median(renders):.2f} s over {args.repeats}")
        reason = unavailable_reason()
        if reason:
            print(f"browser: skipped ({reason})")
            return 0
        baseline_file = Path(tmp) / "baseline.html"
        baseline_file.write_text(EMPTY_PAGE)
        with open_browser() as browser:
            tab = browser.new_page()
            times = {"baseline": [], "leaderboard": []}
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                for name, f in (("baseline", baseline_file), ("leaderboard", page_file)):
                    tab.goto(file_url(f))
                    tab.wait_for_selector("html[data-ready='1']", state="attached")
                    load = tab.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame("
                                        "() => r(performance.now()))))")
                    times[name].append(load / 1000)
            if args.screenshot:
                tab.screenshot(path=args.screenshot, full_page=True)
        base, page = statistics.median(times["baseline"]), statistics.median(times["leaderboard"])
        print(f"Chromium, navigation start to first painted frame after the script ran: leaderboard median "
              f"{page:.3f} s, empty page {base:.3f} s (ratio {page / base:.1f}), over {args.repeats} interleaved loads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
