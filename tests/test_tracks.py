"""Tracks as shipped: each parses, lists its runtime, states the grid of the config it stands for,
and gives a submission its operating points; the published store holds the smoke track's whole
grid and renders offline."""
import pytest
import yaml

from prunebench.cli import main
from prunebench.core.errors import ConfigError
from prunebench.records.entries import store_entries
from prunebench.records.record import load_results
from prunebench.run.config import default_config_text, load_config
from prunebench.tracks.track import all_tracks, load_track, read_track

SHIPPED = {"smoke", "esc50-whisper-tiny", "esc50-whisper-base", "esc50-vit-s14", "esc50-vit-s14-probe"}


def grid(config):
    return sorted((m.name, t.task.id, v.id, meth.id) for m in config.models for t in config.tasks
                  for v in t.variants for meth in config.methods)


def test_prunebench_tracks_lists_every_track_with_its_runtime(capsys):
    assert main(["tracks"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert f"{name} (version {load_track(name).version}, protocol 1)" in out
    assert "esc50-whisper-base (version 3, protocol 1)" in out  # remade, then extended (its file says why)
    assert out.count("expected on a 2-core CPU:") == len(all_tracks()) >= 4


@pytest.mark.parametrize("track, config", [("smoke", None), ("esc50-whisper-tiny", "configs/whisper-esc50-5fold.yaml"),
                                           ("esc50-whisper-base", "configs/whisper-base-esc50.yaml"),
                                           ("esc50-vit-s14", "configs/vit-esc50.yaml"),
                                           ("esc50-vit-s14-probe", "configs/vit-esc50-probe.yaml")])
def test_a_track_is_the_grid_of_its_config(track, config):
    from pathlib import Path

    path = None if config is None else Path(__file__).resolve().parents[1] / config
    expected = load_config(path)
    t = load_track(track)
    assert grid(t.run_config()) == grid(expected)
    assert {k: v for k, v in t.run["measure"].items()} == {k: v for k, v in (expected.raw["measure"]).items()}
    assert set(t.dataset["splits"]) == {task.task.split for task in expected.tasks}


def test_a_submission_runs_none_and_the_method_at_the_operating_points():
    track = load_track("esc50-whisper-base")
    assert [m.id for m in track.submission_config("tome").methods] == ["none", "tome-keep_rate=0.7", "tome-keep_rate=0.5"]
    assert [m.id for m in track.submission_config("tome:keep_rate=0.5").methods] == ["none", "tome-keep_rate=0.5"]
    with pytest.raises(ConfigError, match="keep_rate=0.6 is not an operating point of track esc50-whisper-base"):
        track.submission_config("tome:keep_rate=0.6")
    with pytest.raises(ConfigError, match="none is the baseline"):
        track.submission_config("none")


def test_bad_track_files_are_one_line_naming_the_file_and_key(tmp_path):
    raw = yaml.safe_load(load_track("smoke").source and open(load_track("smoke").source).read())
    for change, message in ((lambda r: r.update(extra=1), "unknown key 'extra'"),
                            (lambda r: r.pop("operating_points"), "missing key 'operating_points'"),
                            (lambda r: r.update(protocol=99), "protocol 99 is newer"),
                            (lambda r: r.update(track="other"), "must be named as its file"),
                            (lambda r: r["run"].update(methods=[{"name": "nosuch"}]), "nosuch")):
        bad = dict(raw, run=dict(raw["run"]))
        change(bad)
        path = tmp_path / "smoke.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError) as exc:
            read_track(path)
        assert str(path) in str(exc.value) or "track smoke" in str(exc.value)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="track 'smok' not found.*did you mean"):
        load_track("smok")


def test_the_published_store_holds_the_smoke_track_and_renders(tmp_path, capsys):
    from prunebench.leaderboard.board import STORE

    published = next(e for e in store_entries(STORE)["smoke"] if e.kind == "published")
    track = load_track("smoke")
    records = load_results(published.records_folder)
    assert sorted((r.model, r.task_id, r.variant, r.method.id) for r in records) == grid(track.run_config())
    assert {r.checkpoint_sha256 for r in records} == {track.model["checkpoint_sha256"]["fold5"]}
    assert {r.identity.parts["task"]["clips"] for r in records} == {track.fingerprint("fold5")}
    page = tmp_path / "board.html"
    assert main(["leaderboard", "-o", str(page)]) == 0
    html = page.read_text()
    section = html[html.index('id="track-smoke"'):]
    section = section[:section.index("</section>")]
    assert "Track smoke (version 1)" in section
    assert section.count('<tr data-entry="published">') == len(track.run_config().methods)


def test_every_published_entry_is_its_track_with_the_pinned_weights_and_clips():
    """Every track's published run in the store: its pairs and the pairs it says are missing make
    the track's grid; each record was made with the checkpoint the track pins on the clips it fixes."""
    from prunebench.leaderboard.board import STORE

    for name, entries in store_entries(STORE).items():
        track = load_track(name)
        for entry in (e for e in entries if e.kind == "published"):
            records = load_results(entry.records_folder)
            have = sorted(f"{r.model} / {r.method.id} / {r.variant}" for r in records)
            assert sorted(have + entry.missing) == sorted(f"{m} / {meth} / {v}" for m, _, v, meth in grid(track.run_config()))
            for r in records:
                assert r.checkpoint_sha256 == track.model["checkpoint_sha256"][r.split], (name, r.path)
                assert r.identity.parts["task"]["clips"] == track.fingerprint(r.split), (name, r.path)
