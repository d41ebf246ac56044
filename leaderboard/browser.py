"""Headless Chromium through Playwright, for the browser tests and for measuring the page.

Uses the system's Chromium (Debian package `chromium`; PRUNEBENCH_CHROMIUM overrides the path),
never a browser that Playwright downloads. The flags keep it working as root and off the network
(the machine's network is closed; background requests would only fail), with a fresh profile.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> Optional[str]:
    """The Chromium executable, or None where there is none."""
    explicit = os.environ.get("PRUNEBENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def unavailable_reason() -> Optional[str]:
    """Why the browser cannot run here, or None when it can."""
    if chromium_path() is None:
        return "no Chromium found (install the Debian packages chromium and chromium-driver, or set PRUNEBENCH_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright; no browser download needed)"
    return None


@contextlib.contextmanager
def open_browser(width: int = 1400, height: int = 900) -> Iterator["object"]:
    """A Playwright browser context on the system Chromium with a fresh, temporary profile."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError(unavailable_reason())
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="prunebench-chromium-") as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            yield context
        finally:
            context.close()


def file_url(path: str | Path) -> str:
    return Path(path).resolve().as_uri()
