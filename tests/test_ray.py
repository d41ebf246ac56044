"""The Ray executor on a real local Ray instance (2 CPUs, started once for the module): the same
records as the local executor, failures isolated, lost workers retried, resume unchanged."""
import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from prunebench.run.config import parse_config  # noqa: E402
from prunebench.run.executors import make_executor  # noqa: E402
from prunebench.core.plugins import load_plugin_file  # noqa: E402
from leaderboard_records import record_documents  # noqa: E402
from prunebench.run.runner import Runner  # noqa: E402

from conftest import run_config  # noqa: E402

PLUGIN = Path(__file__).parent / "plugins" / "faulty_methods.py"
MEASURED = ("samples_per_s", "spread", "speedup_vs_none", "threads", "steps_per_repeat", "seconds_per_repeat",
            "min_repeat_s", "samples_per_s_repeats", "speedup_spread", "interop_threads", "peak_memory_bytes",
            "resting_memory_bytes")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    markers = tmp_path_factory.mktemp("markers")
    os.environ["PRUNEBENCH_TEST_MARKERS"] = str(markers)  # before ray.init: the workers inherit it
    assert load_plugin_file(PLUGIN) is None
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield markers
    ray.shutdown()


def run(config, out, executor="local", **options):
    executor = make_executor(executor, progress=False, echo=lambda s: None, **options)
    return Runner(parse_config(config), out, progress=False, echo=lambda s: None, executor=executor).run()


def comparable(record):
    """A record without provenance and without the measured timing numbers."""
    kept = {k: v for k, v in record.items() if k not in ("provenance", "_path", "_file")}
    if kept.get("throughput"):
        kept["throughput"] = {k: v for k, v in kept["throughput"].items() if k not in MEASURED}
    return json.dumps(kept, sort_keys=True)


def records(out):
    return {(r["method"]["id"], r["task"]["variant"]): r for r in record_documents(out, include_failed=True)}


def test_ray_and_local_executors_write_the_same_records(cluster, tmp_path, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    config = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": [1.0, 0.7, 0.5]}],
                        snr_db=(0,), throughput=True)
    local = run(config, tmp_path / "local")
    remote = run(config, tmp_path / "ray", "ray", methods_per_task=3)
    assert len(local.written) == len(remote.written) == 8 and not local.failed and not remote.failed
    a, b = records(tmp_path / "local"), records(tmp_path / "ray")
    assert a.keys() == b.keys()
    for key in a:
        assert json.loads(comparable(a[key])) == json.loads(comparable(b[key])), key
        assert b[key]["provenance"]["executor"]["name"] == "ray" and a[key]["provenance"]["executor"]["name"] == "local"
        assert b[key]["throughput"]["samples_per_s"] > 0
    # Resume works the same: remove two records, rerun under Ray, only those two are recomputed.
    for key in [("none", "synth-esc/fold5"), ("topk-keep_rate=0.5", "synth-esc/fold5+white@0dB")]:
        os.remove(b[key]["_path"])
    again = run(config, tmp_path / "ray", "ray")
    assert len(again.written) == 2 and len(again.skipped) == 6
    assert {k: comparable(r) for k, r in records(tmp_path / "ray").items()} == {k: comparable(r) for k, r in a.items()}


def test_failures_are_isolated_and_lost_workers_retried(cluster, tmp_path, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    methods = [{"name": "none"}, {"name": "explode", "keep_rate": 0.5}, {"name": "crash_once"}, {"name": "crash_always"}]
    config = run_config(root, checkpoint, methods=methods, snr_db=())
    summary = run(config, tmp_path / "ray", "ray", methods_per_task=1, max_retries=1)
    got = records(tmp_path / "ray")
    assert got[("none", "synth-esc/fold5")]["status"] == "ok"
    # Its worker was killed once, Ray ran the task again: a complete record.
    assert (cluster / "crash_once").exists() and got[("crash_once", "synth-esc/fold5")]["status"] == "ok"
    assert got[("crash_once", "synth-esc/fold5")]["per_clip"] == got[("none", "synth-esc/fold5")]["per_clip"]
    exploded = got[("explode-keep_rate=0.5", "synth-esc/fold5")]
    assert exploded["status"] == "failed" and exploded["error"]["stage"] == "evaluate"
    assert "explode: a method with a bug" in exploded["error"]["message"] and "faulty_methods.py" in exploded["error"]["traceback"]
    lost = got[("crash_always", "synth-esc/fold5")]
    assert lost["status"] == "failed" and lost["error"]["stage"] == "executor" and "Ray task lost" in lost["error"]["message"]
    assert sorted(pair.split(" / ")[1] for pair, _ in summary.failed) == ["crash_always", "explode-keep_rate=0.5"]
