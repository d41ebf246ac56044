"""`prunebench tune`: the keep-rate search on made-up speed curves (timing itself is not tested here:
it belongs in benchmarks that print figures), and its errors."""
import pytest

from prunebench.measure.tune import UnreachableSpeedup, keep_rate_for_mac_ratio, search_keep_rate


def mac_ratio(keep):  # attention-free toy: a fixed share 0.1 of the model is not pruned
    return 1 / (0.1 + 0.9 * keep)


@pytest.mark.parametrize("efficiency", [1.0, 0.8, 0.6])
@pytest.mark.parametrize("target", [1.25, 1.5, 2.0])
def test_search_reaches_the_target_when_efficiency_is_below_one(efficiency, target):
    calls = []

    def speedup(keep):
        calls.append(keep)
        return efficiency * mac_ratio(keep) if keep < 1 else 1.0

    keep, steps = search_keep_rate(mac_ratio, speedup, target)
    assert abs(speedup(keep) / target - 1) <= 0.05
    assert len(steps) <= 4, steps
    assert keep < keep_rate_for_mac_ratio(mac_ratio, target) + 1e-9  # lower efficiency, lower keep rate


def test_the_mac_inverse_is_exact():
    keep = keep_rate_for_mac_ratio(mac_ratio, 1.5)
    assert mac_ratio(keep) == pytest.approx(1.5, rel=1e-6)


def test_a_target_above_the_mac_ratio_is_refused_naming_method_target_and_best():
    with pytest.raises(UnreachableSpeedup, match=r"topk: target speedup 10 is above what its MACs allow \(MAC ratio 6.90"):
        search_keep_rate(mac_ratio, lambda k: mac_ratio(k), 10.0, name="topk")


def test_a_target_below_one_is_refused():
    with pytest.raises(UnreachableSpeedup, match="below 1"):
        search_keep_rate(mac_ratio, lambda k: mac_ratio(k), 0.8, name="topk")


def test_a_method_whose_measured_speed_saturates_says_the_best_it_reached():
    saturating = lambda k: min(1.3, mac_ratio(k))  # noqa: E731  (overhead eats every gain past 1.3x)
    with pytest.raises(UnreachableSpeedup, match=r"not reached; best 1.30"):
        search_keep_rate(mac_ratio, saturating, 2.0, max_measurements=20, name="slow")


def test_cli_bad_target_is_one_line_and_exit_2(capsys):
    from prunebench.cli import main

    assert main(["tune", "--method", "topk", "--target-speedup", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "topk" in err[0] and "0.5" in err[0]
