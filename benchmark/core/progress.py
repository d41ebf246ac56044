"""Progress of the long steps (features, training, evaluation, timing): a count, a rate and the time left.

With progress on, a tqdm bar on stderr (`12/400 clips [00:03<01:30, 4.1 clips/s]`); with it off
(`--no-progress`, e.g. a run in the background writing a log), a line on the `prunebench.progress`
logger every `log_every_s` seconds, which `--no-progress` turns on (`show_lines`): a long step is
never silent."""
from __future__ import annotations

import logging
import time
from typing import Optional

from tqdm import tqdm

log = logging.getLogger("prunebench.progress")


def show_lines() -> None:
    """Print the progress lines (bars off): INFO on the progress logger, whatever `-v` says."""
    log.setLevel(logging.INFO)


class Progress:
    """`with Progress(400, "features esc50/fold5", unit="clip") as bar: ... bar.update()`."""

    def __init__(self, total: int, desc: str, enabled: bool = True, unit: str = "it", log_every_s: float = 30.0):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self.started = time.perf_counter()
        self.log_every_s = log_every_s
        self._logged = self.started
        self._bar: Optional[tqdm] = tqdm(total=total, desc=desc, unit=unit, leave=False) if enabled else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._logged >= self.log_every_s:
            self._logged = now
            log.info("%s", self.line(now))

    def line(self, now: Optional[float] = None) -> str:
        """`features esc50/fold5: 120/400 clips, 4.0 clips/s, about 70 s left`."""
        elapsed = (now if now is not None else time.perf_counter()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f", about {(self.total - self.done) / rate:.0f} s left" if rate > 0 else ""
        return f"{self.desc}: {self.done}/{self.total} {self.unit}s, {rate:.1f} {self.unit}s/s{left}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
