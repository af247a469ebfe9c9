"""Notebook 04 (SaLoRA) runs on the small world with tiny parameters and records consistent figures."""

import pytest

from safelora_lite.evaluation.generation import RATES

pytestmark = pytest.mark.slow

SAFETY_RANK = 16


@pytest.fixture(scope="module")
def recorded(run_notebook):
    # attack_steps / eval_every / curve_max_per_split / task_examples as in test_notebook_02: its LoRA run is reused
    return run_notebook("04_salora", world_size="small", attack_kinds=["mixed"], headline_attack="mixed", attack_steps=30,
                        eval_every=15, curve_max_per_split=6, task_examples=120, safety_rank=SAFETY_RANK, task_rank=16,
                        safety_ranks=[0, SAFETY_RANK], n_feature_samples=32, eval_max_per_split=8)


def test_sweeps_have_both_methods_and_the_rs_points(recorded):
    sweeps = recorded["sweeps"]
    assert {(p["method"], p["safety_rank"]) for p in sweeps} == {("lora", None), ("salora", SAFETY_RANK), ("salora", 0)}
    for p in sweeps:
        assert p["attack"] == "mixed" and p["seed"] == 0 and p["r"] == recorded["setting"]["r"]
        assert all(0.0 <= p[m] <= 1.0 for m in RATES)


def test_headline_and_best_follow_from_the_sweeps(recorded):
    sweeps, head = recorded["sweeps"], recorded["headline"]
    lora = next(p for p in sweeps if p["method"] == "lora")
    sal = next(p for p in sweeps if p["method"] == "salora" and p["safety_rank"] == SAFETY_RANK)
    assert head["refusal_gain"] == pytest.approx(sal["refusal_rate"] - lora["refusal_rate"])
    assert head["task_accuracy_change"] == pytest.approx(sal["task_accuracy"] - lora["task_accuracy"])
    tol = 0.05
    ok = [p for p in sweeps if p["method"] == "salora" and p["task_accuracy"] >= lora["task_accuracy"] - tol]
    if not ok:
        assert recorded["best"] is None
    else:
        best = max(ok, key=lambda p: (p["refusal_rate"], -p["safety_rank"]))
        assert recorded["best"]["safety_rank"] == best["safety_rank"]
        assert recorded["best"]["refusal_rate"] == best["refusal_rate"]


def test_update_outside_the_safety_subspace_and_exact_export(recorded):
    frac = recorded["safety_fraction"]
    assert frac["salora_max"] < 1e-4  # SaLoRA's net change has no component in V_s
    assert frac["lora_mean"] > 100 * max(frac["salora_max"], 1e-7)  # plain LoRA's does
    assert recorded["init_max_logit_change"] < 1e-4  # W_res + s C B0 A0 = W
    assert recorded["export"]["rank"] == 2 * recorded["setting"]["r"]
    assert recorded["export"]["max_logit_diff"] < 1e-4  # exported adapter == training-time model
    assert recorded["export"]["max_logit_change_vs_aligned"] > 1e-3  # and it did change the model
