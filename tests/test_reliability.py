"""Faults inside a run: failing methods and tasks, weight-mutating plugins, bad or foreign result
files, interrupted writes, determinism. Everything runs a real (small) grid in this process."""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from prunebench.cli import main
from prunebench.core.errors import DataError
from prunebench.core.plugins import load_plugin_file
from prunebench.core.registry import METHODS
from prunebench.records.record import Record, as_record
from leaderboard_records import record_documents
from prunebench.records.identity import Identity
from prunebench.records.store import (SCHEMA, InvalidRecord, read_record, remove_stale_temporaries, validate_record,
                               write_record)

from conftest import TINY, run_config

PLUGIN = Path(__file__).parent / "plugins" / "faulty_methods.py"


@pytest.fixture(scope="module", autouse=True)
def faulty_methods():
    """The faulty methods for this module only: later modules that run every registered method
    (test_execution's fast-vs-eager check) must not meet them."""
    before = set(METHODS.names())
    assert load_plugin_file(PLUGIN) is None
    yield
    for name in set(METHODS.names()) - before:
        METHODS.remove(name)


def run(tmp_path, config, out="results", *extra):
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return main(["run", "--config", str(path), "--out", str(tmp_path / out), "--no-progress", "--plugins", str(PLUGIN), *extra])


def by_pair(records):
    return {(r["method"]["id"], r["task"]["variant"]): r for r in records}


def outcome(record):
    """What must not change between equal runs: everything but provenance and timing numbers."""
    keep = {k: v for k, v in record.items() if k not in ("provenance", "_path", "_file", "throughput")}
    return json.loads(json.dumps(keep))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_checkpoint):
    """A finished run: none and topk 0.5, clean and white noise at 10 dB, with throughput."""
    tmp = tmp_path_factory.mktemp("finished")
    root, checkpoint = tiny_checkpoint
    config = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": 0.5}], throughput=True)
    assert run(tmp, config) == 0
    return tmp, config


def test_failing_method_is_a_failed_record_and_the_grid_goes_on(tmp_path, tiny_checkpoint, capsys):
    root, checkpoint = tiny_checkpoint
    methods = [{"name": "none"}, {"name": "explode", "keep_rate": 0.5}, {"name": "topk", "keep_rate": 0.5}]
    assert run(tmp_path, run_config(root, checkpoint, methods=methods, throughput=True)) == 1
    err = capsys.readouterr().err
    assert "FAILED 2 pairs" in err and "explode: a method with a bug" in err and "Traceback" not in err
    records = by_pair(record_documents(tmp_path / "results", include_failed=True))
    assert len(records) == 6 and len(record_documents(tmp_path / "results")) == 4  # failed ones only on request
    for variant in ("synth-esc/fold5", "synth-esc/fold5+white@10dB"):
        failed = records[("explode-keep_rate=0.5", variant)]
        assert failed["status"] == "failed" and failed["error"]["type"] == "RuntimeError"
        assert "faulty_methods.py" in failed["error"]["traceback"] and "in score" in failed["error"]["traceback"]
        assert records[("none", variant)]["status"] == records[("topk-keep_rate=0.5", variant)]["status"] == "ok"
        assert records[("topk-keep_rate=0.5", variant)]["throughput"]["samples_per_s"] > 0
    html = (tmp_path / "results" / "leaderboard.html").read_text()
    assert "Failed pairs (2)" in html and "explode: a method with a bug" in html
    # A rerun keeps the finished records and retries only the failed pairs.
    ok_files = {r["_path"]: os.stat(r["_path"]).st_mtime_ns for r in records.values() if r["status"] == "ok"}
    assert run(tmp_path, run_config(root, checkpoint, methods=methods, throughput=True)) == 1
    assert "4 of 6 records present; 2 to do (2 failed before, retried)" in capsys.readouterr().out
    assert ok_files == {p: os.stat(p).st_mtime_ns for p in ok_files}


def test_method_that_changes_the_weights_is_caught_and_the_model_reloaded(tmp_path, tiny_checkpoint, finished):
    root, checkpoint = tiny_checkpoint
    methods = [{"name": "none"}, {"name": "mutate"}, {"name": "topk", "keep_rate": 0.5}]
    assert run(tmp_path, run_config(root, checkpoint, methods=methods, throughput=True)) == 1
    records = by_pair(record_documents(tmp_path / "results", include_failed=True))
    clean = by_pair(record_documents(finished[0] / "results"))
    for variant in ("synth-esc/fold5", "synth-esc/fold5+white@10dB"):
        caught = records[("mutate", variant)]
        assert caught["status"] == "failed" and caught["error"]["type"] == "IntegrityError"
        assert "changed the model's weights" in caught["error"]["message"]
        assert "blocks.0.attn.qkv.weight" in caught["error"]["message"]
        # The pairs after it saw the pristine weights: the same outcome as a run without it.
        for method in ("none", "topk-keep_rate=0.5"):
            assert records[(method, variant)]["per_clip"] == clean[(method, variant)]["per_clip"]


def test_task_whose_data_breaks_fails_alone(tmp_path, tiny_checkpoint):
    from prunebench.core.registry import TASKS

    root, checkpoint = tiny_checkpoint
    TASKS.get("synth-esc")(root=str(root), clips_per_fold=2).rows()  # generate, then copy
    copy = tmp_path / "synth"
    shutil.copytree(root, copy)
    victim = sorted((copy / "audio").glob("4-*.wav"))[0]
    victim.write_bytes(b"RIFF not audio")
    config = run_config(copy, checkpoint, methods=["none", {"name": "topk", "keep_rate": 0.5}])
    config["tasks"].append({**config["tasks"][0], "split": "fold4"})
    # one checkpoint per held-out fold, here the same one on purpose (only the data matters)
    config["models"][0]["checkpoint"] = {"fold5": str(checkpoint), "fold4": str(checkpoint)}
    assert run(tmp_path, config) == 2  # every failure is bad input
    records = by_pair(record_documents(tmp_path / "results", include_failed=True))
    assert len(records) == 8
    for (method, variant), record in records.items():
        if "fold4" in variant:
            assert record["status"] == "failed" and record["error"]["stage"] == "features"
            assert victim.name in record["error"]["message"] and record["error"]["input_error"]
        else:
            assert record["status"] == "ok"
    # With on_bad_clip: skip, the clip is skipped, counted and named in every record of fold 4.
    assert run(tmp_path, {**config, "on_bad_clip": "skip"}, "skipping") == 0
    for record in record_documents(tmp_path / "skipping", include_failed=True):
        if "fold4" in record["task"]["variant"]:
            assert [s["id"] for s in record["data"]["skipped"]] == [victim.stem] and record["data"]["clips"] == 19


def test_a_truncated_sidecar_is_one_line_naming_record_and_sidecar(tmp_path, finished, capsys):
    src, config = finished
    out = tmp_path / "results"
    shutil.copytree(src / "results", out)
    victim = out / "ast-tiny" / "topk-keep_rate=0.5" / "synth-esc" / "fold5.json"
    sidecar = victim.with_suffix(".npz")
    sidecar.write_bytes(sidecar.read_bytes()[:-10])
    for command in (["leaderboard", str(out), "-o", str(tmp_path / "lb.html")], ["report", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"result {victim}: its sidecar {sidecar} is truncated" in err


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[: len(text) // 2], "unreadable or corrupted"),
    (lambda text: "", "unreadable or corrupted"),
    (lambda text: text.replace(f'"{SCHEMA}"', '"prunebench-result-0"'), "unknown schema version 'prunebench-result-0'"),
    (lambda text: text.replace('"status": "ok"', '"status": "done"'), "status must be one of ok, failed"),
    (lambda text: text.replace('"per_sample"', '"per_sampel"'), "missing field macs.per_sample"),
    (lambda text: json.dumps({**json.loads(text), "metrics": {"accuracy": {"value": "NaN"}}}), "metrics.accuracy.value must be a finite number"),
    (lambda text: text.replace('"value": ', '"value": NaN, "x": '), "unreadable or corrupted"),
])
def test_a_bad_result_file_is_an_error_naming_it_never_a_row(tmp_path, finished, capsys, damage, message):
    src, config = finished
    out = tmp_path / "results"
    shutil.copytree(src / "results", out)
    victim = out / "ast-tiny" / "none" / "synth-esc" / "fold5.json"
    victim.write_text(damage(victim.read_text()))
    with pytest.raises(DataError, match=message):
        record_documents(out)
    assert main(["leaderboard", str(out), "-o", str(tmp_path / "lb.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(victim) in err and message.split("'")[0] in err
    assert run(tmp_path, config) == 2  # resuming into the folder stops before any work
    assert str(victim) in capsys.readouterr().err


def test_a_changed_pair_or_an_incomparable_record_is_an_error(tmp_path, finished, capsys):
    src, config = finished
    out = tmp_path / "results"
    shutil.copytree(src / "results", out)
    # The same folder, rerun with another seed: every pair changed, refused before any work, one line.
    assert run(tmp_path, {**config, "seed": 1}) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "changed (seed: 0 -> 1)" in err and "--overwrite" in err
    # A record of another checkpoint, of other weights, slipped into the folder (another pair, so the
    # run would leave it alone): it cannot be compared with the others, so the report refuses the
    # folder, naming both.
    stranger = Record.read(out / "ast-tiny" / "none" / "synth-esc" / "fold5.json").to_dict()
    other = {"checkpoint_sha256": "0" * 64, "weights_sha256": "1" * 64}
    stranger["model"].update(other)
    stranger["method"]["id"] = "stranger"
    parts = stranger["identity"]["parts"]
    model_part = {**parts["model"], **{k: v for k, v in other.items() if k in parts["model"]}}
    stranger["identity"] = Identity({**parts, "model": model_part}).to_dict()
    target = out / "ast-tiny" / "stranger" / "synth-esc" / "fold5.json"
    write_record(target, stranger)
    sidecar = out / "ast-tiny" / "none" / "synth-esc" / "fold5.npz"
    if sidecar.exists():  # the record names its sidecar: it travels with it
        shutil.copy(sidecar, target.with_suffix(".npz"))
    with pytest.raises(DataError, match="were made with different checkpoint"):
        record_documents(out)
    assert main(["report", str(out)]) == 2
    assert "stranger" in capsys.readouterr().err


def test_records_are_validated_on_write(tmp_path, finished):
    record = read_record(next((finished[0] / "results").rglob("fold5.json")))
    target = tmp_path / "r.json"
    for broken, message in [
        ({**record, "metrics": {"accuracy": {"value": float("nan"), "ci95": [0, 1]}}}, "finite number"),
        ({**record, "per_clip": {**record["per_clip"], "pred": [0]}}, "per_clip.pred must be a list of 20"),
        ({**record, "throughput": {"samples_per_s": float("inf")}}, "Out of range float"),
        ({k: v for k, v in record.items() if k != "tokens"}, "missing field tokens"),
    ]:
        with pytest.raises(InvalidRecord, match=message):
            write_record(target, broken)
        assert not target.exists() and not list(tmp_path.glob(".*"))
    validate_record(record, "ok")


def test_write_is_atomic_temp_fsync_rename(tmp_path, finished, monkeypatch):
    import prunebench.core.files as files

    record = read_record(next((finished[0] / "results").rglob("fold5.json")))
    target = tmp_path / "r.json"
    write_record(target, record)
    before = target.read_bytes()
    calls = []

    class FailingOs:
        def __getattr__(self, name):
            return getattr(os, name)

        def fsync(self, fd):
            calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            return os.fsync(fd)

        def replace(self, src, dst):
            calls.append(("replace", str(src), str(dst)))
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "os", FailingOs())
    changed = {**record, "metrics": {"accuracy": {"value": 0.5, "ci95": [0.4, 0.6]}}}
    with pytest.raises(DataError, match="cannot write result file .*No space left"):
        write_record(target, changed)
    assert target.read_bytes() == before  # the old record is intact
    assert [c[0] for c in calls] == ["fsync", "replace"] and calls[0][1] == calls[1][1] != str(target)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary is gone


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / "m" / ".x.json.tmp999999999"
    alive = tmp_path / "m" / f".y.json.tmp{os.getpid()}"
    dead.parent.mkdir()
    dead.write_text("{")
    alive.write_text("{")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()


def test_same_config_and_seed_gives_identical_outcomes(tmp_path, finished, monkeypatch):
    """Predictions, kept patches, metrics, MACs and tokens, recomputed from scratch (fresh cache)."""
    src, config = finished
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "fresh-cache"))
    assert run(tmp_path, config) == 0
    first, second = by_pair(record_documents(src / "results")), by_pair(record_documents(tmp_path / "results"))
    assert first.keys() == second.keys()
    for key in first:
        assert outcome(first[key]) == outcome(second[key])
        assert as_record(first[key]).clips.kept_patches is not None or key[0] == "none"


def test_training_is_deterministic(tmp_path, tiny_checkpoint):
    from prunebench.run.config import TRAIN_DEFAULTS
    from prunebench.core.registry import TASKS
    from prunebench.train.loop import train_model

    root, _ = tiny_checkpoint
    task = TASKS.get("synth-esc")(root=str(root), clips_per_fold=2)
    cfg = {**TRAIN_DEFAULTS, "epochs": 1, "batch_size": 8, "crop_frames": 64, "full_length_epochs": 0}
    weights = []
    for i in range(2):
        path, _ = train_model("ast-tiny", task, cfg, TINY, out=tmp_path / f"{i}.pt", progress=False)
        weights.append(torch.load(path, weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path, capsys):
    broken = tmp_path / "broken plugin é.py"
    broken.write_text("import no_such_module_anywhere\n", encoding="utf-8")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def oops(:\n")
    duplicate = tmp_path / "duplicate.py"
    duplicate.write_text("from prunebench import register_method\nfrom prunebench.method_api import Method\n"
                         "@register_method('topk')\nclass Again(Method):\n    name = 'topk'\n")
    args = ["list"] + [a for p in (broken, syntax, duplicate) for a in ("--plugins", str(p))]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "topk" in captured.out and "explode" in captured.out
    for path, why in ((broken, "No module named 'no_such_module_anywhere'"), (syntax, "SyntaxError"),
                      (duplicate, "already registered")):
        assert f"plugin file {str(path)!r} failed to load" in captured.err and why in captured.err


def test_a_refit_of_equal_weights_resumes_and_other_weights_are_refused(tmp_path, tiny_checkpoint, capsys):
    """A checkpoint file saved again with the same weights (a refit that reproduced them; the file
    holds other metadata) is the same model: the run resumes into its records and the folder reads
    as one. A file of other weights is refused, naming the record."""
    from prunebench.models import load_model, save_checkpoint
    from prunebench.records.record import load_results

    root, original = tiny_checkpoint
    checkpoint = tmp_path / "probe.pt"
    shutil.copy(original, checkpoint)
    assert run(tmp_path, run_config(root, checkpoint, methods=[{"name": "none"}])) == 0
    model = load_model("ast-tiny", str(checkpoint), num_classes=10)
    save_checkpoint(model.eval(), checkpoint, {"note": "refitted elsewhere, in another time"})
    assert checkpoint.read_bytes() != original.read_bytes()
    config = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": 0.5}])
    assert run(tmp_path, config) == 0
    assert "2 of 4 records present" in capsys.readouterr().out
    records = load_results(tmp_path / "results")
    assert len(records) == 4 and len({r.checkpoint_sha256 for r in records}) == 2 and len({r.weights_sha256 for r in records}) == 1
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(model.eval(), checkpoint, {"note": "other weights"})
    config["methods"].append({"name": "topk", "keep_rate": 0.7})
    assert run(tmp_path, config) != 0
    assert "was made with checkpoint" in capsys.readouterr().err
