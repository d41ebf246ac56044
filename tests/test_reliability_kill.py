"""Killing a real run (SIGKILL, in a subprocess) and resuming it: no partial record, none lost,
and the resumed results equal an uninterrupted run's."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from prunebench.cli import main
from leaderboard_records import record_documents

from conftest import run_config

GRID = 4 * 3  # (clean + 3 SNRs) x 3 methods
METHODS = [{"name": "none"}, {"name": "topk", "keep_rate": [0.7, 0.5]}]


def outcomes(out):
    return {(r["method"]["id"], r["task"]["variant"]): json.dumps({k: v for k, v in r.items() if k not in ("provenance", "_path", "_file")},
                                                                   sort_keys=True)
            for r in record_documents(out, include_failed=True)}


def record_files(out):
    return [p for p in out.rglob("*.json") if not p.name.startswith(".")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    tmp = tmp_path_factory.mktemp("kill")
    root, checkpoint = tiny_checkpoint
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(root, checkpoint, methods=METHODS, snr_db=(20, 10, 0))))
    assert main(["run", "--config", str(config), "--out", str(tmp / "reference"), "--no-progress"]) == 0
    return tmp, config


def start(args, cache):
    env = {**os.environ, "PRUNEBENCH_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_sigkill_mid_run_then_resume_loses_nothing(setup, tmp_path):
    tmp, config = setup
    out = tmp_path / "results"
    # A fresh cache: the killed run computes features too, so the kill lands in the middle of work.
    proc = start(["-m", "prunebench.cli", "run", "--config", str(config), "--out", str(out), "--no-progress"], tmp_path / "cache")
    deadline = time.monotonic() + 300
    while len(record_files(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    written = record_files(out)
    assert 2 <= len(written) < GRID, "the kill should land mid-run"
    for path in written:  # every file there is a whole, valid record
        json.loads(path.read_text())
    assert len(record_documents(out, include_failed=True)) == len(written)

    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert not [p for p in out.rglob(".*") if p.is_file()]
    assert outcomes(out) == outcomes(tmp / "reference")


KILL_IN_RENAME = """
import os, signal, sys
from pathlib import Path
import prunebench.core.files as files  # the one atomic writer (records, sidecars, shards, checkpoints)

class KillOnThirdRecordRename:
    calls = 0
    def __getattr__(self, name):
        return getattr(os, name)
    def replace(self, src, dst):
        if Path(dst).suffix == ".json" and "results" in Path(dst).parts:  # a result record, not a shard's index
            KillOnThirdRecordRename.calls += 1
            if KillOnThirdRecordRename.calls == 3:  # the temporary file is written and fsynced, not yet renamed
                os.kill(os.getpid(), signal.SIGKILL)
        return os.replace(src, dst)

files.os = KillOnThirdRecordRename()
from prunebench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_between_write_and_rename_leaves_no_partial_record(setup, tmp_path):
    tmp, config = setup
    out = tmp_path / "results"
    proc = start(["-c", KILL_IN_RENAME, "run", "--config", str(config), "--out", str(out), "--no-progress"], tmp_path / "cache")
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert len(record_files(out)) == 2
    (temporary,) = [p for p in out.rglob(".*.json.tmp*")]
    json.loads(temporary.read_text())  # complete, but never renamed: readers ignore it
    assert not (temporary.parent / temporary.name[1:].split(".tmp")[0]).exists()

    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert not temporary.exists()
    assert outcomes(out) == outcomes(tmp / "reference")
