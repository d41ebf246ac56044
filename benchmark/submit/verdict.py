"""One check's verdict, as `verify` prints it and `leaderboard --add` names it."""
from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL, WAIVED, NOT_RUN = "pass", "FAIL", "waived", "not run"

# every check, in the order verify runs and prints them
SCHEMA_CHECK = "schema and track version"
RECORD_HASHES = "record hashes"
SIDECAR_HASHES = "sidecar hashes"
COMPLETE = "records complete"
PLUGIN_CHECK = "plugin source"
CLOSED_CHECK = "closed division"
RERUN_CHECK = "rerun sample"
TIMINGS = "timings"
CHECKS = (SCHEMA_CHECK, RECORD_HASHES, SIDECAR_HASHES, COMPLETE, PLUGIN_CHECK, CLOSED_CHECK, RERUN_CHECK, TIMINGS)


@dataclass(frozen=True)
class Verdict:
    check: str
    status: str  # PASS, FAIL, WAIVED or NOT_RUN
    detail: str
    file: str = "bundle.json"  # the bundle's file the verdict concerns, relative to the bundle

    @property
    def failed(self) -> bool:
        return self.status in (FAIL, NOT_RUN)

    def line(self) -> str:
        return f"{self.status:<8} {self.check:<26} {self.detail}"


def passed(check: str, detail: str) -> Verdict:
    return Verdict(check, PASS, detail, "")


class CheckFailed(Exception):
    """Raised inside a check: its verdict is FAIL with this message, naming `file`."""

    def __init__(self, message: str, file: str = "bundle.json"):
        super().__init__(message)
        self.file = file


class CheckWaived(Exception):
    """Raised inside a check that does not apply (open division): its verdict is WAIVED."""
