"""The one rule for 'helps', 'beats' and 'differs': each branch on crafted numbers."""

import math

import pytest

from safelora_lite.comparison.verdicts import (
    NOISE_FLOOR, beats, clear_difference, helps, mean_curve, mean_point, rates_line, task_kept,
)


def rates(refusal, task, over=0.0, harmful=0.0, n=None):
    out = {"refusal_rate": refusal, "harmful_compliance_rate": harmful, "over_refusal_rate": over, "task_accuracy": task}
    return {**out, "n": dict.fromkeys(out, n)} if n else out


@pytest.mark.parametrize("a, b, n, spread, real", [
    (0.8, 0.3, None, 0.1, True), (0.3, 0.8, None, 0.1, True),   # far beyond the spread, either sign
    (0.35, 0.3, None, 0.1, False),                               # inside the seed spread
    (0.3 + 0.99 * NOISE_FLOOR, 0.3, None, 0.0, False),           # the floor: never less than this
    (0.3 + NOISE_FLOOR + 0.001, 0.3, None, 0.0, True),
    (0.40, 0.30, 40, 0.0, False),                                # 4 prompts in 40: inside the prompts' noise
    (0.40, 0.30, 640, 0.0, True),                                # the same gap on 640 prompts is real
    (0.90, 0.85, 100, 0.0, False), (0.90, 0.85, 1000, 0.0, True),
])
def test_clear_difference(a, b, n, spread, real):
    assert clear_difference(a, b, n, n, spread) is real


def test_beats_needs_no_loss_and_a_clear_gain():
    assert beats(rates(0.6, 0.9), rates(0.3, 0.9))
    assert not beats(rates(0.6, 0.5), rates(0.3, 0.9))            # more refusal bought with task accuracy
    assert not beats(rates(0.31, 0.9), rates(0.3, 0.9))           # a gain within the noise floor
    assert not beats(rates(0.6, 0.9), rates(0.3, 0.9), spread=0.4)  # a gain within the seed spread
    assert beats(rates(0.6, 0.9, n=240), rates(0.5, 0.9, n=240))
    assert not beats(rates(0.6, 0.9, n=30), rates(0.5, 0.9, n=30))  # within the prompts' noise


def test_helps_needs_refusal_gain_and_the_task_kept():
    base = rates(0.1, 0.9, n=240)
    assert helps(rates(0.6, 0.86, n=240), base, spread=0.1)
    assert not helps(rates(0.6, 0.45, n=240), base, spread=0.1)     # the task is gone
    assert not helps(rates(0.15, 0.9, n=240), base, spread=0.1)     # within the spread
    assert not helps(rates(0.16, 0.9, n=60), base)                   # within the prompts' noise
    assert not helps(rates(0.0, 0.9, n=240), base)                   # fewer refusals is never help
    assert task_kept(0.45, 0.9) == 0.5 and math.isnan(task_kept(0.3, 0.0))
    assert helps(rates(0.9, 0.0, n=240), rates(0.0, 0.0, n=240))    # pure-harmful attack: no task to lose


def test_points_average_over_seeds_and_print_one_way():
    points = [{"method": "m", "k": k, "seed": s, **rates(0.1 * k + 0.1 * s, 1.0 - 0.1 * k)} for k in (0, 2) for s in (0, 1)]
    assert mean_point(points, method="m", k=2)["refusal_rate"] == pytest.approx(0.25)
    assert mean_point(points, method="other") is None
    xs, ys = mean_curve(points, "task_accuracy", method="m")
    assert xs == [0, 2] and ys == pytest.approx([1.0, 0.8])
    assert rates_line("x", rates(0.5, 0.25)).split() == ["x", "refusal", "0.50", "harmful", "compliance", "0.00",
                                                          "over-refusal", "0.00", "task", "accuracy", "0.25"]
    assert "refusal 0.50 [0.40, 0.60]" in rates_line("x", rates(0.5, 0.25, n=100))
    with_n = [{**p, "n": {"refusal_rate": 100}} for p in points]
    assert mean_point(with_n, method="m", k=2)["n"] == {"refusal_rate": 100}
