"""Notebook 06 (LoRA fusion) runs end to end on the small toy world and records consistent figures."""

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("06_lora_fusion", world_size="small", attack_steps=40, safety_examples=48, safety_steps=20,
                        fusion_weights=[0.0, 0.5, 1.0], safelora_fractions=[0.5], eval_max_per_split=12)


def test_cat_is_exact_and_agrees_with_peft(recorded):
    assert recorded["cat_relative_error"] < 1e-5
    assert recorded["linear_relative_error"] > 0.05
    assert recorded["peft_cat_max_abs_difference"] < 1e-5


def test_sweep_points_and_controls(recorded):
    fusion = [p for p in recorded["sweeps"] if p["method"] == "fusion"]
    scaled = [p for p in recorded["sweeps"] if p["method"] == "task_scaled"]
    safe = [p for p in recorded["sweeps"] if p["method"] == "safe_lora_paper"]
    assert [p["weight"] for p in fusion] == [0.0, 0.5, 1.0]
    assert [p["weight"] for p in scaled] == [0.5, 1.0]  # w = 0 is vanilla LoRA itself
    assert len(safe) == 1 and safe[0]["k"] >= 1
    for p in recorded["sweeps"]:
        assert p["seed"] == 0
        for key in ("refusal_rate", "over_refusal_rate", "task_accuracy"):
            assert 0.0 <= p[key] <= 1.0
    # w = 0 in convex mode is the task adapter unchanged: the same figures as vanilla LoRA
    for key in ("refusal_rate", "over_refusal_rate", "task_accuracy"):
        assert fusion[0][key] == pytest.approx(recorded["vanilla"][key], abs=0.1)  # one greedy flip at most
    # w = 1 is the safety adapter alone, and scaling the task adapter by 0 is the aligned model
    for key in ("refusal_rate", "over_refusal_rate", "task_accuracy"):
        assert fusion[-1][key] == pytest.approx(recorded["safety_adapter"][key], abs=0.1)
        assert scaled[-1][key] == pytest.approx(recorded["aligned"][key])


def test_best_follows_the_documented_rule(recorded):
    fusion = [p for p in recorded["sweeps"] if p["method"] == "fusion"]
    kept = [p for p in fusion if p["task_accuracy"] >= recorded["task_floor"]]
    best = recorded["best"]
    if not kept:
        assert best is None
    else:
        assert best["method"] == "fusion"
        assert best["refusal_rate"] - best["over_refusal_rate"] == max(p["refusal_rate"] - p["over_refusal_rate"] for p in kept)
