"""The page as a whole: escaping, purity, size, figures, example spectrograms, the CLI."""
import json
import re
import shutil

import torch

from prunebench.cli import main
from prunebench.data.examples import decode_image, encode_image, example_ids, example_spectrograms
from prunebench.leaderboard.plots import nice_ticks, pareto_front
from prunebench.leaderboard.render import render_html, render_leaderboard

from leaderboard_records import make_record, mask, write_records

EVIL = "<script>alert(1)</script>"


def sweep(model="ast-tiny", task="synth-esc", clips=8, examples=True):
    """none, topk 0.7 and topk 0.5, clean and white noise at 20 and 0 dB."""
    records = []
    for method, keep, macs, speed, wrongs in (("none", None, 2e9, 100.0, (1, 2, 4)), ("topk", 0.7, 1.4e9, 130.0, (2, 3, 5)),
                                              ("topk", 0.5, 1e9, 170.0, (3, 4, 7))):
        for noise, wrong in zip((None, ("white", 20), ("white", 0)), wrongs):
            correct = [0] * wrong + [1] * (clips - wrong)
            kept = None if method == "none" else [mask(range(0, 64, 2 if keep == 0.5 else 1)[: int(64 * keep)])] * clips
            records.append(make_record(method, keep, model=model, task=task, noise=noise, correct=correct, macs=macs,
                                       speed=speed, speedup=speed / 100, kept=kept, examples=examples))
    return records


def test_every_string_from_results_is_escaped(tmp_path):
    records = sweep()
    for r in records:
        r["method"]["name"] = EVIL if r["method"]["name"] == "topk" else r["method"]["name"]
        r["model"]["name"] = 'tiny"><img src=x onerror=alert(2)>'
        r["provenance"]["git_commit"] = "</footer><script>alert(3)</script>"
        if r.get("examples"):
            r["examples"]["clips"][0]["id"] = "</script><script>alert(4)</script>"
    html = render_html(records)
    assert EVIL not in html and "<img src=x" not in html and "alert(3)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 2  # the page's own: the data block and the code
    data = re.search(r'<script type="application/json" id="kept-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data and json.loads(data)  # still valid JSON, read back by the page's script


def test_page_is_a_pure_function_of_the_folder(tmp_path):
    write_records(tmp_path / "a", sweep())
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    first = render_leaderboard(tmp_path / "a", tmp_path / "one.html").read_text()
    second = render_leaderboard(tmp_path / "elsewhere" / "b", tmp_path / "two.html").read_text()
    assert first == second
    assert str(tmp_path) not in first  # no absolute paths, no generation time


def test_page_holds_every_view_and_stays_small(tmp_path):
    records = sweep() + sweep(model="ast-small") + sweep(task="esc50")
    html = render_html(records)
    for anchor in ("verdicts", "speed", "leaderboard", "pareto", "snr", "robustness", "buckets", "kept", "provenance"):
        assert f'id="{anchor}"' in html
    # Pareto: 3 groups x 2 scores x (GMACs, throughput); lines: 3 groups x (SNR for 1 noise type, and
    # the equal-speed figure's clean score and flip effect)
    assert html.count('class="plot pareto"') == 12 and html.count('class="plot lines"') == 3 * 3
    assert html.count('<table class="iso-speed">') == 3
    assert html.count("<canvas") == 3 * 3 * 3 * 2  # groups x example clips x methods x (clean, noisy)
    assert "commit <code>abc123</code>" in html and "2026-01-02T03:04:05Z" in html
    assert len(html.encode()) < 400_000, len(html.encode())


def test_pareto_front():
    # (GMACs, accuracy): lower cost and higher accuracy are better
    points = [(2.0, 0.80), (1.5, 0.78), (1.5, 0.70), (1.0, 0.60), (1.2, 0.55), (2.5, 0.80)]
    assert pareto_front(points, x_higher_better=False) == {0, 1, 3}
    # (throughput, accuracy): higher is better on both
    assert pareto_front([(100, 0.8), (150, 0.7), (120, 0.6), (150, 0.7)], x_higher_better=True) == {0, 1, 3}


def test_nice_ticks():
    assert nice_ticks(0.93, 2.07) == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert nice_ticks(37.0, 81.0) == [40.0, 50.0, 60.0, 70.0, 80.0]


def test_example_spectrograms_round_trip_and_stable_choice():
    ids = [f"clip{i}" for i in range(20)]
    chosen = example_ids(ids)
    assert len(chosen) == 3 and chosen == example_ids(list(reversed(ids)))
    dropped = next(i for i in ids if i not in chosen)  # another clip skipped: the same examples
    assert example_ids([i for i in ids if i != dropped]) == chosen
    assert set(chosen[1:]) <= set(example_ids([i for i in ids if i != chosen[0]]))
    fbank = torch.linspace(-1, 1, 512 * 128).reshape(512, 128)  # (frames, mel)
    encoded = encode_image("c", fbank, 400, 512)
    assert (encoded["rows"], encoded["cols"], encoded["frames"], encoded["mel_bins"]) == (32, 128, 512, 128)
    image = decode_image(encoded)
    pooled = torch.nn.functional.avg_pool2d(fbank.t()[None, None], (4, 4))[0, 0]
    assert (image - pooled).abs().max() <= (encoded["hi"] - encoded["lo"]) / 255
    # a native-length clip of 200 frames keeps its proportion of columns
    assert encode_image("c", fbank[:200], 200, 512)["cols"] == 50
    record = example_spectrograms(ids, [fbank] * 20, torch.full((20,), 512), 512)
    assert [c["id"] for c in record["clips"]] == chosen and len(json.dumps(record)) < 25_000


def test_cli_reports_conflicts(tmp_path, capsys):
    write_records(tmp_path / "run-a", sweep(examples=False))
    other = sweep(examples=False)
    other[0]["per_clip"]["correct"][-1] = 0
    other[0]["metrics"]["accuracy"]["value"] = 0.75
    write_records(tmp_path / "run-b", other)
    assert main(["leaderboard", str(tmp_path), "-o", str(tmp_path / "lb.html")]) == 0
    err = capsys.readouterr().err
    assert "conflicting records for ast-tiny / none / synth-esc/fold5 (accuracy 0.875 vs 0.75; per-clip correct)" in err
    assert "run-a/ast-tiny/none/synth-esc/fold5.json, run-b/ast-tiny/none/synth-esc/fold5.json" in err
    html = (tmp_path / "lb.html").read_text()
    assert 'id="conflicts"' in html and "1 key(s) have conflicting records" in html
