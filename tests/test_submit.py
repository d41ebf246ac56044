"""Submissions end to end on a tiny track: `submit` writes a bundle that `verify` passes and
`leaderboard --add` merges; a bundle with one record edited, a sidecar truncated, its plugin source
changed, a `none` from another checkpoint or a newer protocol is refused, one line naming the
bundle's file and the check, exit 1, and the store does not change."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from prunebench.cli import main
from prunebench.core.version import PROTOCOL
from prunebench.models import build_model, save_checkpoint
from prunebench.models.checkpoint import checkpoint_sha256
from prunebench.records.entries import store_entries
from prunebench.run.runner import Runner
from prunebench.submit.bundle import MANIFEST, Manifest, record_files
from prunebench.submit.verdict import CHECKS
from prunebench.tracks.track import load_track

from conftest import TINY

PLUGIN = '''
from prunebench import ScorePruning, register_method

@register_method("loudest")
class Loudest(ScorePruning):
    """Keep the patch tokens with the largest hidden-state norm."""

    def score(self, x, state, info):
        return x[:, state.num_prefix:].norm(dim=-1)
'''


def tiny_track(name: str, root: Path, checkpoint: Path) -> dict:
    return {
        "track": name, "version": 1, "protocol": PROTOCOL, "about": "a tiny track for the tests",
        "runtime_2cpu": "seconds",
        "model": {"name": "ast-tiny", "checkpoint": str(checkpoint), "checkpoint_sha256": {"fold5": checkpoint_sha256(checkpoint)}},
        "dataset": {"name": "synth-esc", "splits": ["fold5"], "fingerprint": {"fold5": None}},
        "operating_points": {"keep_rate": [0.5]},
        "run": {"seed": 0, "models": [{"name": "ast-tiny", "checkpoint": str(checkpoint)}],
                "tasks": [{"name": "synth-esc", "root": str(root), "clips_per_fold": 2, "split": "fold5",
                           "corruptions": [{"name": "white", "snr_db": [10]}]}],
                "methods": [{"name": "none"}, {"name": "topk", "keep_rate": 0.5}],
                "measure": {"throughput": True, "batch_size": 8, "warmup": 0, "repeats": 1, "min_repeat_s": 0.0}},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint):
    """A tiny track, its published run in a store, a plugin file and one submitted bundle."""
    base = tmp_path_factory.mktemp("submit")
    root, checkpoint = tiny_checkpoint
    tracks = base / "tracks"
    tracks.mkdir()
    (tracks / "tiny.yaml").write_text(yaml.safe_dump(tiny_track("tiny", root, checkpoint)))
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBENCH_TRACKS", str(tracks))
    store = base / "store"
    published = base / "published-run"
    Runner(load_track("tiny").run_config(), published, progress=False, echo=lambda _: None).run()
    assert main(["leaderboard", "--publish", str(published), "--track", "tiny", "--store", str(store)]) == 0
    plugin = base / "loudest.py"
    plugin.write_text(PLUGIN)
    bundle = base / "bundle"
    code = main(["submit", "--plugins", str(plugin), "--method", "loudest", "--track", "tiny", "--out", str(bundle),
                 "--store", str(store), "--no-progress"])
    yield {"base": base, "store": store, "bundle": bundle, "plugin": plugin, "checkpoint": checkpoint, "root": root,
           "code": code}
    mp.undo()


def store_state(store: Path) -> dict:
    return {p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


def copy_bundle(world, name: str) -> Path:
    target = world["base"] / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(world["bundle"], target)
    return target


def refused(world, bundle: Path, capsys, division: str = "closed") -> str:
    before = store_state(world["store"])
    capsys.readouterr()
    code = main(["leaderboard", "--add", str(bundle), "--store", str(world["store"]), "--division", division])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert store_state(world["store"]) == before  # nothing in the store changed
    return err


def test_submit_writes_a_bundle_that_verifies(world, capsys):
    assert world["code"] == 0
    bundle = world["bundle"]
    manifest = Manifest.read(bundle)
    assert manifest.plugin_sha256 == hashlib.sha256(world["plugin"].read_bytes()).hexdigest()
    assert (bundle / manifest.plugin_file).read_text() == PLUGIN
    assert manifest.method["ids"] == ["loudest-keep_rate=0.5"]
    assert manifest.system["torch"] == torch.__version__ and manifest.system["threads"] >= 1
    assert manifest.raw["track"] == "tiny" and manifest.raw["track_version"] == 1
    assert len([f for f in manifest.files if f.endswith(".json")]) == 4  # (none, loudest) x (clean, white@10dB)
    capsys.readouterr()
    assert main(["verify", str(bundle), "--store", str(world["store"])]) == 0
    out = capsys.readouterr().out
    for check in CHECKS:
        assert f"pass     {check}" in out, out


def test_submit_resumes(world, capsys):
    capsys.readouterr()
    assert main(["submit", "--plugins", str(world["plugin"]), "--method", "loudest", "--track", "tiny",
                 "--out", str(world["bundle"]), "--store", str(world["store"]), "--no-progress"]) == 0
    assert "0 records written, 4 already present" in capsys.readouterr().out


def test_an_edited_record_is_refused(world, capsys):
    bundle = copy_bundle(world, "edited")
    path = next((bundle / "records").rglob("loudest*/**/fold5.json"))
    doc = json.loads(path.read_text())
    doc["metrics"]["accuracy"]["value"] = 1.0
    path.write_text(json.dumps(doc))
    err = refused(world, bundle, capsys)
    assert "check 'record hashes' failed" in err and str(path.relative_to(bundle)) in err
    assert main(["verify", str(bundle), "--store", str(world["store"])]) == 1


def test_a_truncated_sidecar_is_refused(world, capsys):
    bundle = copy_bundle(world, "truncated")
    sidecar = next((bundle / "records").rglob("loudest*/**/fold5.npz"))
    sidecar.write_bytes(sidecar.read_bytes()[:40])
    err = refused(world, bundle, capsys)
    assert "check 'sidecar hashes' failed" in err and str(sidecar) in err


def test_a_changed_plugin_source_is_refused(world, capsys):
    bundle = copy_bundle(world, "changed-source")
    plugin = bundle / Manifest.read(bundle).plugin_file
    plugin.write_text(PLUGIN.replace("norm(dim=-1)", "norm(dim=-1) * -1"))
    err = refused(world, bundle, capsys)
    assert "check 'plugin source' failed" in err and str(plugin) in err and "sha256" in err


def test_a_none_from_another_checkpoint_is_refused_closed_and_added_open(world, capsys, tmp_path):
    """The same submission made with another checkpoint (every record): closed, the check names
    the checkpoint; open, it is added, its rows marked open."""
    bundle = copy_bundle(world, "other-checkpoint")
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_checkpoint(build_model("ast-tiny", num_classes=10, **TINY).eval(), other, {"note": "another seed"})
    track = tiny_track("tiny", world["root"], other)
    track["run"]["methods"] = [{"name": "none"}, {"name": "loudest", "keep_rate": 0.5}]
    from prunebench.run.config import parse_config
    from prunebench.submit.plugin_scope import bundled_plugin

    with bundled_plugin(PLUGIN, str(world["plugin"])):
        Runner(parse_config(track["run"]), tmp_path / "other", progress=False, echo=lambda _: None).run()
    shutil.rmtree(bundle / "records")
    shutil.copytree(tmp_path / "other", bundle / "records", ignore=shutil.ignore_patterns("*.html"))
    manifest = Manifest.read(bundle)
    manifest.raw["files"] = record_files(bundle / "records")
    manifest.write(bundle)
    err = refused(world, bundle, capsys)
    assert "check 'closed division' failed" in err and "checkpoint" in err and "/none/" in err
    before = len(store_entries(world["store"])["tiny"])
    assert main(["leaderboard", "--add", str(bundle), "--store", str(world["store"]), "--division", "open"]) == 0
    entries = store_entries(world["store"])["tiny"]
    assert len(entries) == before + 1 and any(e.division == "open" for e in entries)


def test_the_closed_pin_is_on_the_weights_a_refit_reproduces(world):
    """A probe fitted again makes equal weights in a file with other timings: a track pinning the
    weights accepts its records whatever file sha256 they name; other weights, or a record from
    before weights were hashed, are refused naming the weights."""
    import dataclasses

    from prunebench.models import load_classifier
    from prunebench.records.record import Record
    from prunebench.submit.baseline import check_pinned
    from prunebench.submit.verdict import CheckFailed
    from prunebench.train.checkpoints import weights_sha256

    record = next(r for r in Record.read_folder(world["bundle"] / "records") if r.method.is_baseline)
    weights = weights_sha256(load_classifier("ast-tiny", world["checkpoint"]))
    assert record.weights_sha256 == weights
    track = load_track("tiny")
    refit = dataclasses.replace(track, model={**track.model, "checkpoint_sha256": {"fold5": "0" * 64},
                                              "weights_sha256": {"fold5": weights}})
    check_pinned(refit, record, "none.json")  # the file pin differs; the weights pin decides
    other = dataclasses.replace(refit, model={**refit.model, "weights_sha256": {"fold5": "f" * 64}})
    with pytest.raises(CheckFailed, match=f"made with weights {weights[:12]}, track tiny pins ffffffffffff"):
        check_pinned(other, record, "none.json")
    old = dict(record.document, model={k: v for k, v in record.document["model"].items() if k != "weights_sha256"})
    with pytest.raises(CheckFailed, match="weights \\(not recorded"):
        check_pinned(refit, Record.from_dict(old), "none.json")
    with pytest.raises(CheckFailed, match="made with checkpoint"):  # no weights pin: the file's
        check_pinned(dataclasses.replace(track, model={**track.model, "checkpoint_sha256": {"fold5": "0" * 64}}),
                     record, "none.json")


def test_a_closed_entry_supersedes_the_open_entry_of_the_same_source(world, capsys):
    bundle = copy_bundle(world, "open-then-closed")
    store = world["store"]
    assert main(["leaderboard", "--add", str(bundle), "--store", str(store), "--division", "open"]) == 0
    (opened,) = [p for p in (store / "tiny").iterdir() if p.name.startswith("loudest-") and p.name.endswith("-open")]
    capsys.readouterr()
    assert main(["leaderboard", "--add", str(bundle), "--store", str(store)]) == 0
    assert f"removed {opened}: the same method source is now in the closed division" in capsys.readouterr().out
    assert not opened.exists() and opened.with_name(opened.name[: -len("-open")]).is_dir()


def test_a_newer_protocol_is_refused_naming_both_versions(world, capsys):
    bundle = copy_bundle(world, "newer")
    manifest = Manifest.read(bundle)
    manifest.raw["protocol"] = PROTOCOL + 1
    manifest.write(bundle)
    err = refused(world, bundle, capsys)
    assert f"{bundle / MANIFEST}: check 'schema and track version' failed" in err
    assert f"protocol version {PROTOCOL + 1}" in err and f"protocol version {PROTOCOL}" in err


def test_a_verified_bundle_is_added_and_shown_on_the_board(world, capsys):
    assert main(["leaderboard", "--add", str(world["bundle"]), "--store", str(world["store"])]) == 0
    entries = store_entries(world["store"])["tiny"]
    submission = next(e for e in entries if e.kind == "submission" and e.division == "closed")
    assert submission.methods[0].name == "loudest"
    assert submission.methods[0].sha256 == hashlib.sha256(PLUGIN.encode()).hexdigest()
    page = world["base"] / "board.html"
    assert main(["leaderboard", "--store", str(world["store"]), "-o", str(page)]) == 0
    html = page.read_text()
    assert "Track tiny" in html and "loudest" in html and submission.methods[0].sha256[:12] in html


def test_a_partial_run_is_published_only_when_asked_and_the_board_says_so(world, capsys, tmp_path):
    run = tmp_path / "partial-run"
    shutil.copytree(world["base"] / "published-run", run)
    gone = next(run.rglob("topk*/**/fold5+white@10dB.json"))
    gone.unlink()
    gone.with_suffix(".npz").unlink(missing_ok=True)
    store = tmp_path / "store"
    capsys.readouterr()
    assert main(["leaderboard", "--publish", str(run), "--track", "tiny", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ast-tiny / topk-keep_rate=0.5 / synth-esc/fold5+white@10dB" in err
    assert not store.exists()
    assert main(["leaderboard", "--publish", str(run), "--track", "tiny", "--store", str(store), "--partial"]) == 0
    entry = store_entries(store)["tiny"][0]
    assert entry.missing == ["ast-tiny / topk-keep_rate=0.5 / synth-esc/fold5+white@10dB"]
    page = tmp_path / "board.html"
    assert main(["leaderboard", "--store", str(store), "-o", str(page)]) == 0
    assert "The published run is partial: 1 pair(s)" in page.read_text()


def test_publish_takes_the_tracks_pairs_and_the_testbed_on_its_variants_and_nothing_else(world, tmp_path):
    """A run folder holding more than the track (another method) and a testbed: the published
    entry holds the track's pairs and the testbed members, each with its sidecar, nothing else."""
    import copy

    from prunebench.records.record import load_results
    from prunebench.run.config import parse_config

    raw = copy.deepcopy(load_track("tiny").run)
    raw["methods"] = raw["methods"] + [{"name": "random", "keep_rate": 0.5}]
    raw["testbed"] = {"blocks": [2, 4], "train_fractions": [1.0]}
    run = tmp_path / "run"
    shutil.copytree(world["base"] / "published-run", run)
    Runner(parse_config(raw, "tiny + random + testbed"), run, progress=False, echo=lambda _: None).run()
    every = load_results(run, testbed=True)
    assert any(r.method.name == "random" for r in every) and sum(r.testbed is not None for r in every) > 0
    store = tmp_path / "store"
    assert main(["leaderboard", "--publish", str(run), "--track", "tiny", "--store", str(store)]) == 0
    folder = store / "tiny" / "published" / "records"
    published = load_results(folder, testbed=True)
    assert sorted(r.key for r in published) == sorted(r.key for r in every if r.method.name != "random")
    assert {r.testbed.member for r in published if r.testbed is not None} == {"block2-train100", "block4-train100"}
    for record in folder.rglob("*.json"):  # each with its sidecar where the run wrote one
        source = run / record.relative_to(folder)
        assert record.with_suffix(".npz").exists() == source.with_suffix(".npz").exists()


def test_republishing_the_same_grid_keeps_the_system_that_measured_it(world, tmp_path):
    """Adding a testbed on another machine republishes the grid's very records: the entry keeps the
    system that timed them. A grid whose records changed is this machine's."""
    import json

    from prunebench.records.entries import Entry
    from prunebench.submit.store import publish

    store = tmp_path / "store"
    run = tmp_path / "run"
    shutil.copytree(world["base"] / "published-run", run)
    publish("tiny", run, store, {"cpu": "the first machine"})
    assert Entry.read(store / "tiny" / "published").system == {"cpu": "the first machine"}
    publish("tiny", run, store, {"cpu": "another machine"})
    assert Entry.read(store / "tiny" / "published").system == {"cpu": "the first machine"}
    changed = next(run.rglob("*.json"))
    changed.write_text(json.dumps(json.loads(changed.read_text()), indent=2))  # the same record, another file
    publish("tiny", run, store, {"cpu": "another machine"})
    assert Entry.read(store / "tiny" / "published").system == {"cpu": "another machine"}
