"""Effective robustness: the probit line, the bootstrap that refits it, the no-verdict rule."""
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.analysis.effective import (ABOVE, BELOW, MIN_R2, ON, effective_robustness, fit_line, line_rule,
                                           probit)
from prunebench.analysis.paired import bootstrap_draws
from prunebench.metrics.bootstrap import bootstrap_interval
from prunebench.records.record import load_results

stats = pytest.importorskip("scipy.stats")

N = 400


def record(model_name, method, corruption, correct, member=None):
    ids = [f"c{i}" for i in range(len(correct))]
    keep = None if method == "none" else 0.5
    model = {"name": "m", "config": {"num_classes": 10}, "checkpoint_sha256": "a" * 64}
    if member is not None:
        model["testbed"] = {"member": member[0], "block": member[1], "train_fraction": member[2], "l2": 0.001,
                            "max_iter": 100, "base_checkpoint_sha256": "b" * 64, "train_clips": 10}
        model["checkpoint_sha256"] = member[0]
    return {
        "model": model,
        "task": {"name": "t", "split": "fold5", "variant": "t/fold5" + ("" if corruption is None else f"+{corruption}"),
                 "bucket": None, "corruption": None if corruption is None else {"id": corruption}},
        "method": {"id": method, "name": method.split("-")[0], "params": {} if keep is None else {"keep_rate": keep}},
        "metrics": {"accuracy": {"value": float(np.mean(correct))}},
        "per_clip": {"ids": ids, "correct": [int(c) for c in correct], "pred": [0] * len(correct)},
        "macs": {"per_sample": 1.0}, "tokens": {"per_layer": []},
    }


def bernoulli(rng, p, n=N):
    return (rng.random(n) < p).astype(int)


def members_on_a_line(rng, slope=1.2, intercept=-0.6, cleans=(0.35, 0.45, 0.55, 0.65, 0.72, 0.8), corruption="white@20dB"):
    """Members whose noisy accuracy lies on probit(noisy) = slope * probit(clean) + intercept."""
    records = []
    for i, clean in enumerate(cleans):
        member = (f"block{i + 1}-train100", i + 1, 1.0)
        noisy = stats.norm.cdf(slope * stats.norm.ppf(clean) + intercept)
        records += [record("m", "none", None, bernoulli(rng, clean), member),
                    record("m", "none", corruption, bernoulli(rng, noisy), member)]
    return records


def test_the_line_equals_scipy_probits_and_numpy_least_squares():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.95, 7)
    noisy = stats.norm.cdf(0.9 * stats.norm.ppf(clean) - 0.4 + rng.normal(0, 0.1, 7))
    line, residuals = fit_line(clean.tolist(), noisy.tolist(), N)
    x, y = stats.norm.ppf(clean), stats.norm.ppf(noisy)
    (a, b), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
    assert line.slope == pytest.approx(a, abs=1e-9) and line.intercept == pytest.approx(b, abs=1e-9)
    assert np.allclose(residuals, y - (a * x + b), atol=1e-9)
    assert line.r2 == pytest.approx(1 - np.sum((y - a * x - b) ** 2) / np.sum((y - y.mean()) ** 2), abs=1e-9)
    assert line.predict(0.6, N) == pytest.approx(stats.norm.cdf(a * stats.norm.ppf(0.6) + b), abs=1e-12)
    # 0% and 100% are clipped to 1/(2n) before the probit: finite
    assert probit(0.0, N) == pytest.approx(stats.norm.ppf(1 / (2 * N))) and np.isfinite(probit(1.0, N))


def reference_interval(records, method, corruption, seed=0):
    """A plain loop: each resample expanded into clip indices, accuracies by numpy, the line by
    scipy's probit and numpy's lstsq, ER = noisy - Phi(line at clean)."""
    values = reference_resamples(records, method, seed)
    return bootstrap_interval(values), np.std(values, ddof=1)


def reference_resamples(records, method, seed=0):
    """The ER of `method` on each resample (one noise condition), by the plain loop."""
    members = sorted({r["model"]["testbed"]["member"] for r in records if "testbed" in r["model"]})

    def vector(name, noisy, is_member):
        for r in records:
            ok = ("testbed" in r["model"]) == is_member and (r["task"]["corruption"] is not None) == noisy
            if ok and (r["model"]["testbed"]["member"] if is_member else r["method"]["id"]) == name:
                return np.array(r["per_clip"]["correct"], dtype=float)

    counts = bootstrap_draws(N, seed).numpy().astype(int)
    values = []
    clip = lambda a: np.clip(a, 1 / (2 * N), 1 - 1 / (2 * N))  # noqa: E731
    for row in counts:
        idx = np.repeat(np.arange(N), row)
        x = stats.norm.ppf(clip([vector(m, False, True)[idx].mean() for m in members]))
        y = stats.norm.ppf(clip([vector(m, True, True)[idx].mean() for m in members]))
        (a, b), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
        mc, mn = vector(method, False, False)[idx].mean(), vector(method, True, False)[idx].mean()
        values.append(mn - stats.norm.cdf(a * stats.norm.ppf(clip(mc)) + b))
    return np.array(values)


def test_effective_robustness_and_its_bootstrap_equal_a_plain_reference_loop():
    rng = np.random.default_rng(1)
    records = members_on_a_line(rng)
    line_at = lambda c: stats.norm.cdf(1.2 * stats.norm.ppf(c) - 0.6)  # noqa: E731
    records += [record("m", "none", None, bernoulli(rng, 0.78)), record("m", "none", "white@20dB", bernoulli(rng, line_at(0.78))),
                record("m", "topk-keep_rate=0.5", None, bernoulli(rng, 0.6)),
                record("m", "topk-keep_rate=0.5", "white@20dB", bernoulli(rng, line_at(0.6) - 0.15))]
    result = effective_robustness(records)
    (condition,) = result.conditions
    assert condition.no_verdict is None and condition.line.r2 > MIN_R2 and len(condition.members) == 6
    by = {m.method: m for m in condition.methods}
    topk = by["topk-keep_rate=0.5"]
    assert topk.er == pytest.approx(topk.noisy - condition.line.predict(topk.clean, N), abs=1e-12)
    (lo, hi), sd = reference_interval(records, "topk-keep_rate=0.5", "white@20dB")
    assert topk.ci95[0] == pytest.approx(lo, abs=1e-9) and topk.ci95[1] == pytest.approx(hi, abs=1e-9)
    assert topk.mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sd, rel=1e-6)
    assert topk.verdict == BELOW and topk.ci95[1] < 0  # 15 points below the line: found
    assert by["none"].verdict == ON and by["none"].ci95[0] < 0 < by["none"].ci95[1]  # on the line: no effect
    # the band holds the refitted lines: the fitted line lies inside it
    for clean, low, high in condition.band:
        assert low - 1e-9 <= condition.line.predict(clean, N) <= high + 1e-9
    (pooled_none, pooled_topk) = result.pooled
    assert pooled_topk.er == pytest.approx(topk.er) and pooled_topk.ci95 == pytest.approx(topk.ci95)
    # its distance from none's ER: the difference on every resample, against the plain loop
    difference = reference_resamples(records, "topk-keep_rate=0.5") - reference_resamples(records, "none")
    assert pooled_topk.vs_none == pytest.approx(topk.er - by["none"].er, abs=1e-12)
    assert pooled_topk.vs_none_ci95 == pytest.approx(bootstrap_interval(difference), abs=1e-9)
    assert pooled_topk.vs_none_mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * np.std(difference, ddof=1),
                                                    rel=1e-6)
    assert pooled_none.vs_none is None and pooled_none.vs_none_ci95 is None


def test_a_model_above_the_line_and_an_extrapolated_one():
    rng = np.random.default_rng(2)
    records = members_on_a_line(rng, cleans=(0.3, 0.4, 0.5, 0.6, 0.7))
    line_at = lambda c: stats.norm.cdf(1.2 * stats.norm.ppf(c) - 0.6)  # noqa: E731
    records += [record("m", "none", None, bernoulli(rng, 0.9)), record("m", "none", "white@20dB", bernoulli(rng, line_at(0.9))),
                record("m", "tome-keep_rate=0.5", None, bernoulli(rng, 0.5)),
                record("m", "tome-keep_rate=0.5", "white@20dB", bernoulli(rng, line_at(0.5) + 0.15))]
    by = {m.method: m for m in effective_robustness(records).conditions[0].methods}
    assert by["tome-keep_rate=0.5"].verdict == ABOVE and not by["tome-keep_rate=0.5"].extrapolated
    assert by["none"].extrapolated  # 90% clean, the members reach 70%


@pytest.mark.parametrize("cleans, noisy, reason", [
    ([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], "the testbed has 3 members (a line needs 4)"),
    ([0.60, 0.62, 0.64, 0.66], [0.4, 0.42, 0.44, 0.46], "clean accuracies span 6.0 points (a line needs 10)"),
    ([0.5, 0.6, 0.7, 0.8], [0.6, 0.2, 0.7, 0.3], "accuracy is not on a line at this noise (R^2"),
    ([0.5, 0.6, 0.7, 0.8], [0.1, 0.1, 0.1, 0.1], "noisy accuracies do not vary"),
])
def test_the_no_verdict_rule(cleans, noisy, reason):
    line = fit_line(cleans, noisy, N)[0] if len(cleans) >= 4 else None
    assert reason in line_rule(cleans, line)
    assert line_rule([0.5, 0.6, 0.7, 0.8], fit_line([0.5, 0.6, 0.7, 0.8], [0.3, 0.4, 0.5, 0.62], N)[0]) is None


def test_a_condition_off_the_line_gets_no_verdict_and_is_left_out_of_pooling():
    rng = np.random.default_rng(3)
    records = members_on_a_line(rng) + members_on_a_line(rng, corruption="pink@20dB")[1::2]  # pink: the members' noisy records
    # pink's noisy accuracies: scattered, not a function of clean accuracy
    scattered = [0.5, 0.1, 0.45, 0.05, 0.4, 0.15]
    for r, p in zip([r for r in records if r["task"]["corruption"] and r["task"]["corruption"]["id"] == "pink@20dB"],
                    scattered):
        r["per_clip"]["correct"] = bernoulli(rng, p).tolist()
    for corruption in (None, "white@20dB", "pink@20dB"):
        records.append(record("m", "topk-keep_rate=0.5", corruption, bernoulli(rng, 0.6 if corruption is None else 0.3)))
    result = effective_robustness(records)
    pink = next(c for c in result.conditions if c.corruption == "pink@20dB")
    assert pink.no_verdict.startswith("no verdict: accuracy is not on a line") and pink.line.r2 < MIN_R2
    assert pink.methods[0].verdict == pink.no_verdict
    (pooled,) = result.pooled
    assert pooled.conditions == 1  # white only


def test_without_members_nothing_is_computed_and_a_map_task_is_named():
    rng = np.random.default_rng(4)
    plain = [record("m", "none", None, bernoulli(rng, 0.5)), record("m", "none", "white@20dB", bernoulli(rng, 0.4))]
    assert effective_robustness(plain).conditions == []
    records = members_on_a_line(rng)
    for r in records:
        r["metrics"] = {"map": {"value": 0.5}}
    assert "needs an accuracy task" in effective_robustness(records).notes[0]
    assert torch.is_tensor(bootstrap_draws(N, 0))


def test_a_model_below_the_line_by_the_detectable_effect_is_found_about_80_percent_of_the_time():
    """The detectable effect is what the bootstrap verdict finds with 80% power: data sets whose
    method lies that far below a known line, each read as the report reads it (120 data sets,
    standard error of the share 3.7 points)."""
    line_at = lambda c: stats.norm.cdf(1.2 * stats.norm.ppf(c) - 0.6)  # noqa: E731

    def data(seed, delta):
        rng = np.random.default_rng(seed)
        return members_on_a_line(rng) + [
            record("m", "topk-keep_rate=0.5", None, bernoulli(rng, 0.6)),
            record("m", "topk-keep_rate=0.5", "white@20dB", bernoulli(rng, line_at(0.6) - delta))]

    mde = effective_robustness(data(0, 0.0)).conditions[0].methods[0].mde
    found = [effective_robustness(data(seed, mde)).conditions[0].methods[0].verdict == BELOW for seed in range(1, 121)]
    assert 0.68 <= sum(found) / len(found) <= 0.92


VIT_STORE = Path(__file__).resolve().parents[1] / "results-store/esc50-vit-s14/published/records"


@pytest.mark.skipif(not VIT_STORE.exists(), reason="no ViT store entry")
def test_the_fine_tuned_vit_store_entry_has_a_line_at_every_noise_and_the_published_verdicts():
    # The published track carries its 14-member testbed (8 earlier epochs, 6 probes): every one of its 8 noises
    # (white, pink at 20/10/0 dB, mix-clips at 20/10 dB) gets a line, and the verdicts docs/results.md states are
    # what the records give.
    result = effective_robustness(load_results(VIT_STORE, testbed=True))
    assert len(result.conditions) == 8
    for condition in result.conditions:
        assert condition.no_verdict is None and condition.line.r2 > 0.85, condition
    pooled = {(p.method_name, p.keep_rate): p for p in result.pooled}
    assert pooled[("none", None)].verdict == ON
    assert pooled[("topk", 0.5)].verdict == ABOVE and pooled[("topk", 0.5)].er == pytest.approx(0.094, abs=0.0005)  # a share: +9.4 points
    for method in ("tome", "random"):  # below at both keep rates, 1.5x included, once 0 dB is in
        assert pooled[(method, 0.7)].verdict == BELOW and pooled[(method, 0.5)].verdict == BELOW
        # and below the unpruned model, which itself lies under the line at 0 dB: -2.5 points at 1.5x
        assert pooled[(method, 0.7)].vs_none == pytest.approx(-0.025, abs=0.0006) and pooled[(method, 0.7)].vs_none_ci95[1] < 0
