"""Wilson and Newcombe intervals against values computed by hand and against their defining properties."""

import math

import pytest

from safelora_lite.evaluation.intervals import interval_text, newcombe, wilson


def test_wilson_matches_the_formula_and_known_values():
    assert wilson(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    # Newcombe (1998), table I: 81 of 263 -> (0.2553, 0.3662)
    assert wilson(81 / 263, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    lo, hi = wilson(0.0, 240)
    assert lo == 0.0 and 0.0 < hi < 0.02  # never a zero-width interval at 0, never below 0
    assert wilson(0.3, 0) == (0.0, 1.0)


def test_wilson_narrows_as_prompts_grow():
    widths = [math.fsum((-lo, hi)) for lo, hi in (wilson(0.8, n) for n in (10, 40, 160, 640))]
    assert widths == sorted(widths, reverse=True)


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), table II, example (a): 56/70 - 48/80 -> (0.0524, 0.3339)
    assert newcombe(56 / 70, 70, 48 / 80, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_interval_text():
    assert interval_text(0.5, 100) == "0.50 [0.40, 0.60]"


def test_a_rate_of_0_or_1_lies_inside_its_own_interval():
    for n in (1, 4, 7, 240):
        assert wilson(1.0, n)[1] == 1.0 and wilson(0.0, n)[0] == 0.0
