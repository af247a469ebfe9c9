"""Notebook 05 (SPLoRA) runs on the small world with tiny parameters and records consistent sweeps."""

import pytest

from safelora_lite.evaluation.generation import RATES

pytestmark = pytest.mark.slow

FIELDS = {"method", "k", "seed", "refusal_rate", "task_accuracy", "over_refusal_rate", "num_pruned"}


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("05_splora", seeds=[0], world_size="small", attack_steps=40, pure_harmful_examples=48, k_step=4,
                        thresholds=[0.0], toy_dims=[16, 64], toy_draws=3, quantile_demo_size=1000, eval_max_per_split=6,
                        null_samples=8)


def test_sweeps_have_the_issue_fields(recorded):
    sweeps, n = recorded["sweeps"], recorded["n_modules"]
    assert {p["method"] for p in sweeps} == {"splora", "splora_low", "splora_reference", "random", "safe_lora_paper"}
    for p in sweeps:
        assert FIELDS <= set(p)
        assert 0 <= p["k"] <= n and p["seed"] == 0
        assert all(0.0 <= p[m] <= 1.0 for m in RATES)
        if p["method"] != "safe_lora_paper":
            assert p["num_pruned"] == p["k"] == len(p["modules"])
    assert sorted({p["k"] for p in sweeps if p["select"] == "number"}) == sorted(set(range(0, n + 1, 4)) | {n})


def test_sweeps_agree_with_the_reference_models(recorded):
    """K=0 is the attacked adapter; pruning every module is the aligned model, whichever method picked them."""
    sweeps, aligned, n = recorded["sweeps"], recorded["aligned"], recorded["n_modules"]
    attacked = {a["attack"]: a for a in recorded["attacked"]}
    for p in sweeps:
        if p["select"] != "number":
            continue
        if p["k"] == 0:
            assert all(p[m] == attacked[p["attack"]][m] for m in RATES)
        if p["k"] == n and p["method"] != "safe_lora_paper":
            assert all(p[m] == aligned[m] for m in RATES)


def test_threshold_points_prune_what_the_threshold_says(recorded):
    pts = [p for p in recorded["sweeps"] if p["select"] == "threshold"]
    assert pts and all(p["threshold"] == 0.0 and p["method"] == "splora" for p in pts)


def test_best_setting_is_one_of_the_sweep_points(recorded):
    best = recorded["best"]
    assert best["attack"] == "mixed" and best["method"] == "splora" and best["num_pruned"] == best["k"] >= 1
    means = [p for p in recorded["sweeps"] if p["attack"] == "mixed" and p["method"] == "splora" and p["k"] == best["k"] and p["select"] == "number"]
    assert means and all(abs(best[m] - means[0][m]) < 1e-9 for m in RATES)  # one seed: the mean is the point
    others = [p for p in recorded["sweeps"] if p["attack"] == "mixed" and p["method"] == "splora" and p["select"] == "number" and p["k"] >= 1]
    assert best["refusal_rate"] + best["task_accuracy"] >= max(p["refusal_rate"] + p["task_accuracy"] for p in others) - 1e-9
    assert {"k", "refusal_rate", "task_accuracy"} <= set(best["safe_lora"])


def test_toy_section_shows_the_degenerate_reference(recorded):
    toy = recorded["toy"]
    assert toy["reference_minus_one_minus_vm_max"] < 0.5  # the reference score is 1 - v_m plus rounding noise
    assert set(toy["random_update_ediem_median_by_dim"]) == {"16", "64"}
    assert all(abs(v) < 5 for v in toy["random_update_ediem_median_by_dim"].values())
