"""User-facing errors: the CLI prints them as one line and exits non-zero, no traceback."""
from __future__ import annotations

import difflib
from typing import Iterable


class PrunebenchError(Exception):
    """An error caused by input (config, data, plugin), reported as one clear line."""


class ConfigError(PrunebenchError):
    """A run configuration key or value is invalid."""


class DataError(PrunebenchError):
    """A dataset, manifest or audio file cannot be used."""


class PluginError(PrunebenchError):
    """A plugin is missing, duplicated or broken."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
