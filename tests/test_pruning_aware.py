"""Pruning-aware against off the shelf (prunebench.analysis.pruning_aware), on two real runs of two
tiny models: the off-the-shelf folder (none and topk) and an "aware" folder made with another
checkpoint (topk only). The table's accuracies equal the records' own metrics, its off-the-shelf
flip effect equals the report's per condition (averaged), and bad folders fail naming the problem."""
from __future__ import annotations

import pytest
import torch
import yaml

from conftest import TINY, run_config
from prunebench.analysis.pruning_aware import compare, main, table
from prunebench.analysis.robustness import compare as report_compare
from prunebench.cli import main as cli
from prunebench.models import build_model, save_checkpoint
from prunebench.records.record import Record

TOPK = {"name": "topk", "keep_rate": 0.5}


def _run(tmp_path, root, checkpoint, methods, name):
    config = run_config(root, checkpoint, methods=methods, snr_db=(10, 0))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["run", "--config", str(path), "--out", str(tmp_path / name), "--no-progress"]) == 0
    return Record.read_folder(tmp_path / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    base = tmp_path_factory.mktemp("aware")
    torch.manual_seed(3)
    other = base / "other.pt"
    save_checkpoint(build_model("ast-tiny", num_classes=10, **TINY).eval(), other, {"note": "stands for the aware model"})
    off = _run(base, root, checkpoint, [{"name": "none"}, TOPK], "off")
    aware = _run(base, root, other, [TOPK], "aware")
    return base, off, aware


def _accuracy(records, method_id, corruption=None):
    (r,) = [r for r in records if r.method.id == method_id and r.corruption_id == corruption]
    return r.metrics["accuracy"]["value"]


def test_the_table_reads_the_records_and_agrees_with_the_report(folders):
    base, off, aware = folders
    (row,) = compare(off, {"topk-keep_rate=0.5": aware})
    assert row.keep_rate == 0.5 and row.clips == len(next(r for r in off if r.ok).clips.ids)
    assert row.none_clean == pytest.approx(_accuracy(off, "none"))
    assert row.off_clean == pytest.approx(_accuracy(off, "topk-keep_rate=0.5"))
    assert row.aware_clean == pytest.approx(_accuracy(aware, "topk-keep_rate=0.5"))
    assert row.gap == pytest.approx(row.aware_clean - row.none_clean)
    noisy = [_accuracy(aware, "topk-keep_rate=0.5", c) for c in ("white@10dB", "white@0dB")]
    assert row.aware_noisy == pytest.approx(sum(noisy) / 2)
    flips = [c.flip_effect for c in report_compare(off) if c.method == "topk-keep_rate=0.5"]
    assert len(flips) == 2 and row.off_flip == pytest.approx(sum(flips) / 2)
    assert row.gap_ci is None or row.gap_ci[0] <= row.gap <= row.gap_ci[1]
    assert "topk-keep_rate=0.5" in table([row])


def test_the_command_prints_the_table_and_refuses_a_folder_of_two_methods(folders, capsys):
    base, _, _ = folders
    assert main([str(base / "off"), str(base / "aware")]) == 0
    assert "within 2 pts" in capsys.readouterr().out
    assert main([str(base / "off"), str(base / "aware"), "--baseline", str(base / "aware")]) == 2
    assert "no ok record of none" in capsys.readouterr().err
    assert main([str(base / "off"), str(base / "off")]) == 2
    assert "holds one method, found ['none', 'topk-keep_rate=0.5']" in capsys.readouterr().err


def test_placement_by_regime_reads_the_kept_masks(folders):
    """Off vs aware: the between-regime Jaccard is the per-clip mean of the masks' overlap, computed
    here from the hex masks; a folder against itself gives 1 and the same placement twice."""
    from prunebench.analysis.placement_regimes import compare_placement, regime_table
    from prunebench.analysis.robustness import mask_jaccard

    base, off, aware = folders
    topk = "topk-keep_rate=0.5"
    (row,) = compare_placement(off, {topk: aware})
    (a,) = [r for r in off if r.method.id == topk and r.corruption is None]
    (b,) = [r for r in aware if r.method.id == topk and r.corruption is None]
    where = {c: i for i, c in enumerate(b.clips.ids)}
    overlaps = [mask_jaccard(m, b.clips.kept_patches[where[c]]) for c, m in zip(a.clips.ids, a.clips.kept_patches)]
    assert row.between == pytest.approx(sum(overlaps) / len(overlaps))
    assert row.clean["off"].clips == len(a.clips.ids) and row.no_selection is None
    assert 0 <= row.noise_jaccard["off"] <= 1 and 0 <= row.noise_jaccard["aware"] <= 1
    assert sum(row.clean["aware"].time_shares()) == pytest.approx(1.0)

    (same,) = compare_placement(off, {topk: off})
    assert same.between == 1.0 and same.noise_jaccard["off"] == same.noise_jaccard["aware"]
    assert same.clean["off"].kept == same.clean["aware"].kept
    assert "J off vs aware" in regime_table([row, same])


def test_placement_by_regime_needs_a_clean_record(folders):
    from prunebench.analysis.placement_regimes import compare_placement
    from prunebench.core.errors import DataError

    base, off, aware = folders
    noisy_only = [r for r in aware if r.corruption is not None]
    with pytest.raises(DataError, match="no clean record of topk-keep_rate=0.5 pruning-aware"):
        compare_placement(off, {"topk-keep_rate=0.5": noisy_only})


def test_effective_robustness_of_both_regimes_against_a_known_line():
    """Members built clip by clip with known accuracies: the pooled ER of a model equals noisy minus
    the least-squares probit line (fitted here with numpy) at its clean accuracy, averaged over the
    noises; a testbed of 3 members gives no ER at all (no line through three points)."""
    import numpy as np
    from statistics import NormalDist

    from prunebench.analysis.pruning_aware import Baseline, Outcomes, pooled_er, testbed_lines
    from prunebench.analysis.paired import bootstrap_draws

    n = 200
    ids = [f"c{i:03d}" for i in range(n)]

    def outcome(clean: float, noisy: dict) -> Outcomes:
        by = {"clean": {c: int(i < clean * n) for i, c in enumerate(ids)}}
        for noise, acc in noisy.items():
            by[noise] = {c: int(i < acc * n) for i, c in enumerate(ids)}
        return Outcomes(by)

    cleans = [0.3, 0.45, 0.6, 0.7, 0.8, 0.9]
    noisy = {"pink@20dB": [c - 0.12 + 0.02 * (k % 2) for k, c in enumerate(cleans)],
             "white@20dB": [c - 0.2 + 0.01 * k for k, c in enumerate(cleans)]}
    members = {f"block{k}": outcome(c, {w: noisy[w][k] for w in noisy}) for k, c in enumerate(cleans)}
    base = Baseline(members["block5"], ids, sorted(noisy), bootstrap_draws(n, 0))

    lines = {}
    from prunebench.analysis.effective import testbed_line
    for noise in base.noises:
        lines[noise] = testbed_line(torch.stack([m.vector("clean", ids) for m in members.values()]),
                                    torch.stack([m.vector(noise, ids) for m in members.values()]), base.draws)
    model = outcome(0.62, {"pink@20dB": 0.40, "white@20dB": 0.35})
    got = pooled_er(model, lines, ids)

    probit = lambda a: NormalDist().inv_cdf(a)  # noqa: E731  (no accuracy here is 0 or 1)
    acc = lambda o, condition: float(o.vector(condition, ids).double().mean())  # noqa: E731  (as realised on 200 clips)
    expected = []
    for noise in base.noises:
        a, b = np.polyfit([probit(acc(m, "clean")) for m in members.values()],
                          [probit(acc(m, noise)) for m in members.values()], 1)
        expected.append(acc(model, noise) - NormalDist().cdf(a * probit(acc(model, "clean")) + b))
    assert got.value == pytest.approx(sum(expected) / 2, abs=1e-9)
    assert got.ci[0] <= got.value <= got.ci[1] and got.mde > 0

    three = {noise: testbed_line(tl_clean[:3], tl_noisy[:3], base.draws)
             for noise, (tl_clean, tl_noisy) in
             {w: (torch.stack([m.vector("clean", ids) for m in members.values()]),
                  torch.stack([m.vector(w, ids) for m in members.values()])) for w in base.noises}.items()}
    assert pooled_er(model, three, ids) is None
    assert testbed_lines([], base) == {}


def test_a_study_published_into_the_store_is_on_the_board(folders, tmp_path, capsys):
    """`leaderboard --publish-aware` copies the folders' records into the store's pruning-aware
    studies; the published board shows the comparison's cells and where each regime's tokens go.
    A folder that is not a pruning-aware run of a method off the shelf is refused, naming it."""
    from prunebench.analysis.placement_regimes import compare_placement, regime_cells
    from prunebench.analysis.pruning_aware import table_cells
    from prunebench.records.entries import store_entries
    from prunebench.records.studies import store_studies

    base, off, aware = folders
    store = tmp_path / "store"
    common = ["--study", "tiny-aware", "--title", "A tiny model, pruning-aware", "--store", str(store)]
    assert cli(["leaderboard", "--publish-aware", str(base / "off"), "--aware", str(base / "aware"), "--control",
                str(base / "off")] + common) == 0
    (study,) = store_studies(store)
    assert study.aware == ["topk"] and study.control and (store / "pruning-aware" / "tiny-aware" / "topk").is_dir()
    assert store_entries(store) == {}  # a study is not a track
    page = tmp_path / "board.html"
    assert cli(["leaderboard", "--store", str(store), "-o", str(page)]) == 0
    html = page.read_text()
    section = html[html.index('id="study-tiny-aware"'):]
    _, (row,) = table_cells(compare(off, {"topk-keep_rate=0.5": aware}))
    assert all(cell.replace("−", "-") in section for cell in row)
    _, (tokens,) = regime_cells(compare_placement(off, {"topk-keep_rate=0.5": aware}))
    assert f"<td>{tokens[-1]}</td>" in section and "J off vs aware" in section

    assert cli(["leaderboard", "--publish-aware", str(base / "off"), "--aware", str(base / "off")] + common) == 2
    assert "holds one method, found ['none', 'topk-keep_rate=0.5']" in capsys.readouterr().err
    assert cli(["leaderboard", "--publish-aware", str(base / "aware"), "--aware", str(base / "aware")] + common) == 2
    assert "no ok none record off the shelf" in capsys.readouterr().err
    assert cli(["leaderboard", "--publish-aware", str(base / "off"), "--aware", str(base / "aware"),
                "--testbed-track", "smoke"] + common) == 2
    assert f"{store / 'smoke' / 'published'}: track smoke has no published testbed" in capsys.readouterr().err


def test_the_stores_studies_read_whole():
    """Every study the repository's store ships: each pruning-aware folder is a row, read against
    the testbed its off-the-shelf run holds (an ER in both regimes), and its records are the ones
    the docs' table quotes (Whisper tiny fine-tuned: topk's aware clean accuracy 78.8% on 400 clips)."""
    from prunebench.leaderboard.board import STORE
    from prunebench.leaderboard.studies_view import study_views
    from prunebench.records.studies import store_studies

    studies = {s.name: s for s in store_studies(STORE)}
    assert "whisper-tiny-ft" in studies
    views = {v.name: v for v in study_views(STORE)}
    for name, study in studies.items():
        view = views[name]
        assert len(view.rows) == len(study.aware) and view.testbed
        assert "ER aware [CI] (detectable)" in view.headers and all(row[-1] != "—" for row in view.rows)
    topk = next(r for r in views["whisper-tiny-ft"].rows if r[0].startswith("topk"))
    assert topk[1:5] == ["400", "79.2", "76.2", "78.8"]
    # at 2x (the bfloat16 fine-tune, its own control at 79.8%): two epochs leave every method short of it
    rows = {r[0].split("-")[0]: r for r in views["whisper-tiny-ft-2x"].rows}
    assert rows["topk"][1:5] == ["400", "79.8", "57.5", "65.5"] and rows["tome"][1:5] == ["400", "79.8", "74.5", "77.2"]
    # the frozen ViT's probes at white and pink 20 and 10 dB, read against the esc50-vit-s14-probe track's testbed
    assert len(views["vit-s14-probe"].testbed) == 4
    intensity = next(r for r in views["vit-s14-probe"].rows if r[0].startswith("intensity"))
    assert intensity[1:5] == ["400", "69.2", "35.0", "67.0"] and intensity[-1].startswith("-5.7 [-9.3, -2.5]")  # still below the line
    # Whisper base reads the esc50-whisper-base track's testbed in place (36 probes, same frozen encoder)
    assert studies["whisper-base"].testbed_track == "esc50-whisper-base"
    assert not list(studies["whisper-base"].off_the_shelf.glob("*+testbed-*"))
    assert all("36 members" in line for line in views["whisper-base"].testbed) and len(views["whisper-base"].testbed) == 8  # w/p 20, 10, 0 dB; m 20, 10
    topk = next(r for r in views["whisper-base"].rows if r[0].startswith("topk"))
    assert topk[1:5] == ["400", "81.8", "56.5", "75.5"]
    # at 2x on Whisper base: no refitted probe comes within 2 points, none lies below the line
    rows = {r[0].split("-")[0]: r for r in views["whisper-base-2x"].rows}
    assert studies["whisper-base-2x"].testbed_track == "esc50-whisper-base"
    assert rows["random"][1:5] == ["400", "81.8", "64.0", "66.8"] and rows["tome"][1:5] == ["400", "81.8", "70.0", "75.8"]
    assert rows["intensity"][-1].startswith("+6.4 [+3.5, +9.2]")  # aware, above the line
