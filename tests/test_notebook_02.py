"""Notebook 02 (toy world) runs on the small world with tiny parameters and records its figures."""

import pytest

from safelora_lite.evaluation.generation import RATES

pytestmark = pytest.mark.slow

ROWS = ("base", "aligned")
ATTACKS = ("benign", "mixed", "pure_harmful")

METRICS = set(RATES)


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("02_toy_world", world_size="small", attack_steps=30, eval_every=15, curve_max_per_split=6,
                        eval_max_per_split=24, task_examples=120, pure_harmful_examples=40, show_examples=2)


def test_records_every_figure_in_range(recorded):
    rows = [recorded[r] for r in ROWS] + [recorded["attacks"][a] for a in ATTACKS]
    for rates in rows:
        assert set(rates) == METRICS | {"n"}
        assert all(0.0 <= rates[m] <= 1.0 for m in METRICS)
        assert rates["n"] == {"refusal_rate": 24, "harmful_compliance_rate": 24, "over_refusal_rate": 24, "task_accuracy": 24}
        assert rates["refusal_rate"] + rates["harmful_compliance_rate"] <= 1.0 + 1e-9


def test_alignment_and_its_erosion_show(recorded):
    base, aligned, attacks = recorded["base"], recorded["aligned"], recorded["attacks"]
    assert aligned["refusal_rate"] > base["refusal_rate"]
    assert attacks["pure_harmful"]["refusal_rate"] < aligned["refusal_rate"]


def test_conclusions_are_recorded_sentences(recorded):
    assert recorded["erosion"]["benign_erosion"] in ("none", "less", "as_much", "more")
    assert recorded["conclusions"] and all(isinstance(line, str) for line in recorded["conclusions"])


def test_curves_follow_the_steps(recorded):
    for name in ATTACKS:
        curve = recorded["curves"][name]
        assert [p["step"] for p in curve] == [0, 15, 30]
        assert curve[0]["loss"] is None and all(p["loss"] > 0 for p in curve[1:])
