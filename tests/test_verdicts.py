"""The one rule for 'helps', 'beats' and 'differs': each branch on crafted numbers."""

import math

import pytest

from safelora_lite.comparison.verdicts import (
    NOISE_FLOOR, beats, clear_difference, helps, mean_curve, mean_point, rates_line, task_kept,
)


def rates(refusal, task, over=0.0, harmful=0.0):
    return {"refusal_rate": refusal, "harmful_compliance_rate": harmful, "over_refusal_rate": over, "task_accuracy": task}


@pytest.mark.parametrize("diff, spread, real", [
    (0.5, 0.1, True), (-0.5, 0.1, True),      # far beyond the spread, either sign
    (0.05, 0.1, False),                       # inside the seed spread
    (NOISE_FLOOR, 0.0, False),                # one prompt's worth is never enough
    (NOISE_FLOOR + 0.001, 0.0, True),
])
def test_clear_difference(diff, spread, real):
    assert clear_difference(diff, spread) is real


def test_beats_needs_no_loss_and_a_clear_gain():
    assert beats(rates(0.6, 0.9), rates(0.3, 0.9))
    assert not beats(rates(0.6, 0.5), rates(0.3, 0.9))            # more refusal bought with task accuracy
    assert not beats(rates(0.31, 0.9), rates(0.3, 0.9))           # a gain within the noise floor
    assert not beats(rates(0.6, 0.9), rates(0.3, 0.9), spread=0.4)  # a gain within the seed spread


def test_helps_needs_refusal_gain_and_the_task_kept():
    assert helps(0.5, 0.1, 0.95)
    assert not helps(0.5, 0.1, 0.5)     # the task is gone
    assert not helps(0.05, 0.1, 1.0)    # within the spread
    assert not helps(-0.5, 0.1, 1.0)    # fewer refusals is never help
    assert task_kept(0.45, 0.9) == 0.5 and math.isnan(task_kept(0.3, 0.0))


def test_points_average_over_seeds_and_print_one_way():
    points = [{"method": "m", "k": k, "seed": s, **rates(0.1 * k + 0.1 * s, 1.0 - 0.1 * k)} for k in (0, 2) for s in (0, 1)]
    assert mean_point(points, method="m", k=2)["refusal_rate"] == pytest.approx(0.25)
    assert mean_point(points, method="other") is None
    xs, ys = mean_curve(points, "task_accuracy", method="m")
    assert xs == [0, 2] and ys == pytest.approx([1.0, 0.8])
    assert rates_line("x", rates(0.5, 0.25)).split() == ["x", "refusal", "0.50", "harmful", "compliance", "0.00",
                                                          "over-refusal", "0.00", "task", "accuracy", "0.25"]
