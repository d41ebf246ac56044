"""The testbed of effective robustness: config, members as real models, records, resume."""
import pytest
import torch
import yaml

from conftest import TINY, run_config
from prunebench.cli import main
from prunebench.core.errors import ConfigError
from prunebench.measure.evaluate import evaluate
from prunebench.method_api import parse_method_spec  # noqa: F401  (the method registry is importable)
from prunebench.models import build_model, load_classifier
from prunebench.analysis.merge import collect
from prunebench.records.record import Record, load_results
from prunebench.core.registry import METHODS
from prunebench.run.config import parse_config
from prunebench.train.testbed import parse_testbed, stratified_subset


@pytest.mark.parametrize("raw, message", [
    ({"train_fraction": [0.5]}, "unknown key 'train_fraction'"),
    ({"train_fractions": [0, 0.5]}, "train_fractions must be a list of shares in (0, 1]"),
    ({"train_fractions": [0.5, 0.5]}, "lists a share twice"),
    ({"blocks": [0, 2]}, "blocks must be 'all' or a list of block numbers >= 1"),
    ({"blocks": "some"}, "blocks must be 'all'"),
    ({"l2": -1}, "l2 must be a number >= 0"),
    ([0.5], "expected a mapping"),
])
def test_bad_testbed_sections_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=None) as info:
        parse_testbed(raw, "run.yaml: testbed")
    assert message in str(info.value) and str(info.value).startswith("run.yaml: testbed")


def test_testbed_members_are_blocks_times_fractions_and_a_block_beyond_the_model_is_an_error():
    settings = parse_testbed({"blocks": [1, 3], "train_fractions": [1.0, 0.25]}, "t")
    members = settings.members(4, {"probe_l2": 0.01})
    assert [m.name for m in members] == ["block1-train25", "block1-train100", "block3-train25", "block3-train100"]
    assert all(m.l2 == 0.01 for m in members)
    assert [m.block for m in parse_testbed(True, "t").members(2, {})] == [1, 1, 1, 1, 2, 2, 2, 2]
    with pytest.raises(ConfigError, match="blocks: 5 is beyond the model's 4 blocks"):
        parse_testbed({"blocks": [5]}, "t").members(4, {})


def test_a_config_parses_its_testbed_section(tmp_path, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    config = parse_config(run_config(root, checkpoint, testbed={"train_fractions": [0.5, 1.0]}))
    assert config.testbed.train_fractions == (0.5, 1.0) and config.testbed.blocks is None
    assert parse_config(run_config(root, checkpoint)).testbed is None


def test_stratified_subsets_take_the_share_of_every_class_and_nest():
    labels = torch.tensor([c for c in range(5) for _ in range(20)])
    small, large = stratified_subset(labels, 0.1, 0), stratified_subset(labels, 0.5, 0)
    assert torch.bincount(labels[small]).tolist() == [2] * 5 and torch.bincount(labels[large]).tolist() == [10] * 5
    assert set(small.tolist()) <= set(large.tolist())
    assert stratified_subset(labels, 1.0, 0).tolist() == list(range(100))
    assert torch.bincount(labels[stratified_subset(labels, 0.01, 0)]).tolist() == [1] * 5  # at least one a class


def test_encode_per_block_ends_with_what_the_head_reads_and_matches_cut_models(tiny_model):
    torch.manual_seed(1)
    fbank = torch.randn(3, 128, 128)
    with torch.no_grad():
        per_block = tiny_model.encode_per_block(fbank)
        assert per_block.shape[:2] == (3, 4)
        assert torch.allclose(per_block[:, -1], tiny_model.encode(fbank)[0], atol=1e-5)
        cut = build_model("ast-tiny", num_classes=5, **{**TINY, "depth": 2}).eval()
        state = {k: v for k, v in tiny_model.state_dict().items() if ".blocks.2." not in k and ".blocks.3." not in k}
        cut.load_state_dict(state)
        assert torch.allclose(per_block[:, 1], cut.encode(fbank)[0], atol=1e-5)


@pytest.fixture(scope="module")
def testbed_run(tmp_path_factory, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    tmp = tmp_path_factory.mktemp("testbed")
    raw = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": 0.5}], snr_db=(20, 0),
                     testbed={"blocks": [2, 4], "train_fractions": [0.5, 1.0]})
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(config), "--out", str(tmp / "results"), "--no-progress"]) == 0
    return tmp, config


def test_members_write_ordinary_records_marked_as_testbed(testbed_run):
    tmp, _ = testbed_run
    every = load_results(tmp / "results", testbed=True)
    members = [r for r in every if r.testbed is not None]
    assert len(members) == 4 * 3  # 4 members x (clean + 2 noisy)
    assert {r.testbed.member for r in members} == {"block2-train50", "block2-train100", "block4-train50", "block4-train100"}
    assert {r.key[0] for r in members} == {f"ast-tiny+testbed-{m}" for m in
                                          ("block2-train50", "block2-train100", "block4-train50", "block4-train100")}
    assert all(r.method.id == "none" and r.model == "ast-tiny" for r in members)
    half = next(r for r in members if r.testbed.member == "block2-train50")
    assert half.testbed.train_clips == 40 and half.model_config["depth"] == 2  # 10 classes x 4 of 8 training clips
    assert half.macs < next(r for r in every if r.testbed is None and r.method.id == "none").macs
    # the other readers see the grid alone
    assert all(r.testbed is None for r in load_results(tmp / "results"))
    result = collect(tmp / "results")
    assert len(result.testbed) == 12 and all(r.testbed is None for r in result.records)


def test_a_member_checkpoint_evaluated_as_a_run_evaluates_gives_the_records_predictions(testbed_run):
    tmp, _ = testbed_run
    from prunebench.data.features import FeatureStore, frontend_for
    from prunebench.data.variant import TaskVariant
    from prunebench.run.config import load_config

    config = load_config(tmp / "run.yaml")
    variant = config.tasks[0].variants[1]  # white@20dB
    record = next(r for r in load_results(tmp / "results", testbed=True)
                  if r.testbed is not None and r.testbed.member == "block2-train50" and r.variant == variant.id)
    model = load_classifier("ast-tiny", record.document["model"]["checkpoint"])
    store = FeatureStore(run_seed=0, progress=False)
    features = store.get(variant, frontend_for(model.config, variant.task))
    ev = evaluate(model, METHODS.get("none")(), features, "accuracy")
    assert ev.per_clip["ids"] == record.clips.ids
    assert ev.per_clip["pred"] == record.clips.pred
    assert ev.score["value"] == pytest.approx(record.score)


def test_a_rerun_skips_every_member_and_a_changed_member_is_refused(testbed_run, capsys):
    tmp, config = testbed_run
    before = {r.path: r.document["provenance"].get("date") for r in load_results(tmp / "results", testbed=True)}
    assert main(["run", "--config", str(config), "--out", str(tmp / "results"), "--no-progress"]) == 0
    assert "testbed: 0 records written, 12 already present" in capsys.readouterr().out
    after = {r.path: r.document["provenance"].get("date") for r in load_results(tmp / "results", testbed=True)}
    assert after == before
    raw = yaml.safe_load(config.read_text())
    raw["testbed"]["l2"] = 0.5
    changed = tmp / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(changed), "--out", str(tmp / "results"), "--no-progress"]) == 2
    assert "testbed member block2-train50 changed (model.testbed" in capsys.readouterr().err


def test_a_failure_keeps_the_variants_already_written_and_the_rerun_writes_the_rest(testbed_run, monkeypatch, capsys):
    import prunebench.run.testbed as step

    tmp, config = testbed_run
    out = tmp / "interrupted"
    real = step.pooled_per_block

    def fails_on_white_noise(encoder, features, spec, *args, **kwargs):
        if spec["split"] == "test" and "white" in spec["variant"]:
            raise RuntimeError("killed mid-testbed")
        return real(encoder, features, spec, *args, **kwargs)

    monkeypatch.setattr(step, "pooled_per_block", fails_on_white_noise)
    main(["run", "--config", str(config), "--out", str(out), "--no-progress"])
    members = [r for r in load_results(out, testbed=True, include_failed=True) if r.testbed is not None or not r.ok]
    ok = [r for r in members if r.ok]
    assert len(ok) == 4 and {r.variant for r in ok} == {"synth-esc/fold5"}  # the clean variant, every member
    assert sum(not r.ok for r in members) == 8
    monkeypatch.setattr(step, "pooled_per_block", real)
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert "testbed: 8 records written, 4 already present" in capsys.readouterr().out


def test_report_and_leaderboard_show_the_effective_robustness_figure(testbed_run):
    tmp, _ = testbed_run
    from prunebench.analysis.report import report_folder

    text = report_folder(tmp / "results")
    section = text[text.index("EFFECTIVE ROBUSTNESS"):]
    assert "== ast-tiny on synth-esc/fold5 (20 clips; testbed: 4 members" in section
    assert "white@20dB" in section and "white@0dB" in section
    assert section.count("topk") >= 2 and "none" in section  # every grid model has its ER, `none` too
    residuals = section[section.index("Mean residual of the members cut after each block"):]
    assert "block 2" in residuals.splitlines()[1] and "block 4" in residuals.splitlines()[1]
    html = (tmp / "results" / "leaderboard.html").read_text()
    effective = html[html.index('<h2 id="effective">'):html.index('<h2 id="speed">')]
    assert effective.count('class="plot effective"') == 2  # one figure per noise condition
    assert effective.count('class="member"') == 8  # 4 members on each
    assert ">topk 0.5</text>" in effective and ">none</text>" in effective  # the grid's models, labelled
    assert "testbed block2-train50: clean" in effective
    # the members are not rows of the leaderboard's tables
    assert "+testbed-" not in html[html.index('<h2 id="leaderboard">'):html.index('<h2 id="pareto">')]


def test_the_published_board_reads_pruned_models_against_the_published_testbed(testbed_run, tmp_path):
    """The store's published entry holds the grid and its testbed: the board's effective-robustness
    column is the report's pooled ER (not a dash), the figure draws the members, and a submission
    in the open division (another checkpoint) is not read against that testbed."""
    import shutil

    from prunebench.analysis.effective import effective_robustness
    from prunebench.leaderboard.board import collect_board, render_board
    from prunebench.records.entries import Entry, MethodSource

    tmp, _ = testbed_run
    system = {"cpu": "Test CPU", "threads": 2, "torch": "2.x", "device": "cpu", "dtype": "float32"}
    records_only = shutil.ignore_patterns("*.html", "*.txt", "*.md", ".*")
    for name, division, kind in (("published", "closed", "published"), ("topk-abcd-open", "open", "submission")):
        entry = tmp_path / "store" / "smoke" / name
        shutil.copytree(tmp / "results", entry / "records", ignore=records_only)
        (entry / "sources").mkdir()
        (entry / "sources" / "topk.py").write_text("# topk\n")
        Entry("smoke", 1, 1, division, kind, [MethodSource("topk", "sources/topk.py", "ab" * 32)], system).write(entry)
    expected = {e.method: 100 * e.er for e in effective_robustness(load_results(tmp / "results", testbed=True)).pooled
                if e.er is not None}
    assert set(expected) == {"none", "topk-keep_rate=0.5"}

    boards, _ = collect_board(tmp_path / "store")
    rows = {(r.entry, r.method): r for r in boards[0].rows}
    assert rows[("published", "none")].effective.value == pytest.approx(expected["none"])
    assert rows[("published", "topk")].effective.value == pytest.approx(expected["topk-keep_rate=0.5"])
    assert rows[("published", "topk")].effective.low < rows[("published", "topk")].effective.high
    assert rows[("topk-abcd-open", "topk")].effective is None  # open division: not this testbed's model
    assert not any("+testbed-" in r.method or "testbed" in r.params for r in boards[0].rows)  # members are no rows

    html = render_board(tmp_path / "store", tmp_path / "board.html").read_text()
    figures = html[html.index('id="effective-smoke"'):html.index("Method sources")]
    assert figures.count('class="plot effective"') == 2  # one figure per noise condition
    assert figures.count('class="member"') == 8  # 4 members on each
    assert ">topk 0.5</text>" in figures and ">none</text>" in figures


def test_pruning_aware_reads_both_regimes_against_the_runs_testbed(testbed_run, tmp_path, capsys):
    """The run's testbed read by prunebench.analysis.pruning_aware: a model's ER there is the
    report's pooled ER (the same line and clips), whichever folder the model's records come from."""
    import shutil

    from prunebench.analysis.effective import effective_robustness
    from prunebench.analysis.pruning_aware import compare, main as aware_main, read_aware

    tmp, _ = testbed_run
    folder = tmp / "results"
    topk = "topk-keep_rate=0.5"
    shutil.copytree(folder / "ast-tiny" / topk, tmp_path / "aware" / "ast-tiny" / topk)
    every = Record.read_folder(folder)
    members = [r for r in every if r.testbed is not None]
    (row,) = compare([r for r in every if r.ok], read_aware([str(tmp_path / "aware")]), testbed=members)
    pooled = {p.method: p for p in effective_robustness(load_results(folder, testbed=True)).pooled}
    assert row.off_er.value == pytest.approx(pooled[topk].er, abs=1e-9)
    assert row.aware_er.value == pytest.approx(pooled[topk].er, abs=1e-9)  # the same records in both regimes
    assert aware_main([str(folder), str(tmp_path / "aware")]) == 0
    out = capsys.readouterr().out
    assert "ER off [CI] (detectable)" in out and "testbed at white@20dB: 4 members" in out and "none's own ER" in out


def test_recipe_probe_on_an_audio_vit_keeps_its_head_norm(tiny_checkpoint, tmp_path):
    """recipe probe on an AST-family model, whose head is a LayerNorm then a Linear (the frozen-ViT
    track's case): the LayerNorm is kept as loaded, the Linear is fitted, and a run's `none` predicts
    what the probe's own evaluation predicted."""
    from prunebench.cli import main as cli
    from prunebench.models import load_model, save_checkpoint

    root, _ = tiny_checkpoint
    torch.manual_seed(0)  # an init at the task's 512 frames, the length the run evaluates at
    checkpoint = tmp_path / "init.pt"
    save_checkpoint(build_model("ast-tiny", num_classes=10, **{**TINY, "target_frames": 512}).eval(), checkpoint, {})
    config = run_config(root, None, methods=[{"name": "none"}], snr_db=(), train={"recipe": "probe", "init": str(checkpoint)})
    config["models"][0]["checkpoint"] = None
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert cli(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    (none,) = Record.read_folder(tmp_path / "out")
    path = none.document["model"]["checkpoint"]  # the probe the run fitted (at the task's length)
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["train"]["recipe"] == "probe" and dict(zip(none.clips.ids, none.clips.pred)) == meta["test_predictions"]
    fitted, start = load_model("ast-tiny", path), load_model("ast-tiny", checkpoint)
    assert torch.equal(fitted.head[0].weight, start.head[0].weight)  # the norm as loaded
    assert not torch.equal(fitted.head[1].weight, start.head[1].weight)  # the linear layer fitted


@pytest.fixture(scope="module")
def epoch_testbed_run(tmp_path_factory):
    """A run that fine-tunes the tiny model 3 epochs, keeping each, with the earlier epochs as members."""
    from conftest import TINY, write_esc_layout

    tmp = tmp_path_factory.mktemp("epoch-testbed")
    root = write_esc_layout(tmp / "synth", clips_per_fold=2, classes=3)
    raw = {"seed": 0, "models": [{"name": "ast-tiny", "overrides": TINY}],
           "tasks": [{"name": "esc50", "root": str(root), "split": "fold5",
                      "corruptions": [{"name": "white", "snr_db": [10]}]}],
           "methods": [{"name": "none"}], "measure": {"throughput": False, "batch_size": 8},
           "train": {"epochs": 3, "batch_size": 8, "crop_frames": 0, "full_length_epochs": 0, "epoch_checkpoints": True},
           "testbed": {"blocks": [2, 4], "train_fractions": [1.0], "epochs": "all"}}
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(config), "--out", str(tmp / "results"), "--no-progress"]) == 0
    return tmp, config


def test_epoch_members_are_the_earlier_epochs_evaluated_whole(epoch_testbed_run, capsys):
    from prunebench.data.features import FeatureStore, frontend_for
    from prunebench.run.config import load_config

    tmp, config_path = epoch_testbed_run
    members = [r for r in load_results(tmp / "results", testbed=True) if r.testbed is not None]
    # epochs 1 and 2 (the third is the run's model, `none`) and the probes, each clean and noisy
    assert sorted({r.testbed.member for r in members}) == ["block2-train100", "block4-train100", "epoch01-of-03",
                                                           "epoch02-of-03"]
    assert len(members) == 4 * 2
    config = load_config(config_path)
    store = FeatureStore(run_seed=0, progress=False)
    for record in (r for r in members if r.testbed.epoch is not None):
        assert record.testbed.block == 4 and record.testbed.train_fraction == 1.0
        checkpoint = record.document["model"]["checkpoint"]
        assert f"epoch-{record.testbed.epoch:02d}-of-03.pt" in checkpoint
        variant = next(v for v in config.tasks[0].variants if v.id == record.variant)
        model = load_classifier("ast-tiny", checkpoint)
        ev = evaluate(model, METHODS.get("none")(), store.get(variant, frontend_for(model.config, variant.task)), "accuracy")
        assert ev.per_clip["ids"] == record.clips.ids and ev.per_clip["pred"] == record.clips.pred
    # each clean score is the one the training measured on the held-out fold after that epoch
    from prunebench.train.checkpoints import kept_epochs
    base = next(r for r in load_results(tmp / "results") if r.method.id == "none").document["model"]["checkpoint"]
    measured = {k.epoch: k.test_score for k in kept_epochs(base)}
    clean = {r.testbed.epoch: r.score for r in members if r.testbed.epoch is not None and r.corruption_id is None}
    assert clean == pytest.approx({e: measured[e] for e in (1, 2)})
    assert main(["run", "--config", str(config_path), "--out", str(tmp / "results"), "--no-progress"]) == 0
    assert "testbed: 0 records written, 8 already present" in capsys.readouterr().out
    from prunebench.analysis.report import report_folder
    section = report_folder(tmp / "results")
    section = section[section.index("EFFECTIVE ROBUSTNESS"):]
    assert "testbed: 4 members" in section
    residuals = section[section.index("Mean residual of the members cut after each block, and of the epoch"):]
    assert residuals.splitlines()[1].split()[1:] == ["block", "2", "block", "4", "epochs"]
    html = (tmp / "results" / "leaderboard.html").read_text()
    effective = html[html.index('<h2 id="effective">'):html.index('<h2 id="speed">')]
    assert effective.count('class="member epoch"') == 2 and effective.count('class="member"') == 2  # one condition
    assert "testbed epoch01-of-03: clean" in effective


def test_epoch_members_need_kept_epochs_and_name_a_missing_one(epoch_testbed_run, tiny_checkpoint):
    from prunebench.run.config import load_config
    from prunebench.train.checkpoints import kept_epochs

    tmp, config_path = epoch_testbed_run
    checkpoint = next(r for r in load_results(tmp / "results") if r.method.id == "none").document["model"]["checkpoint"]
    kept = kept_epochs(checkpoint)
    assert [k.epoch for k in kept] == [1, 2, 3] and [k.is_final for k in kept] == [False, False, True]
    settings = parse_testbed({"epochs": [2, 5]}, "run.yaml: testbed")
    with pytest.raises(ConfigError, match=r"run.yaml: testbed: epochs: epoch 5 is not among the earlier epochs .* \(1, 2; "):
        settings.epoch_members(checkpoint, 4, "run.yaml: testbed")
    with pytest.raises(ConfigError, match="kept no per-epoch checkpoints"):
        settings.epoch_members(tiny_checkpoint[1], 4, "run.yaml: testbed")
    with pytest.raises(ConfigError, match="epochs must be 'all' or a list of epoch numbers"):
        parse_testbed({"epochs": [0]}, "t")
    assert load_config(config_path).testbed.epochs == "all"
