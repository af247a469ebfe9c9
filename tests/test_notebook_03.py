"""Notebook 03 (Safe LoRA) runs on the small world with tiny parameters and records consistent sweeps."""

import pytest

pytestmark = pytest.mark.slow

FIELDS = {"method", "k", "rank", "seed", "refusal_rate", "task_accuracy", "over_refusal_rate"}


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("03_safe_lora", seeds=[0], world_size="small", attack_steps=40, pure_harmful_examples=48, k_step=4,
                        thresholds=[0.5, 0.99], exact_rank=1, exact_ranks=[1, 4], eval_max_per_split=8)


def test_sweeps_have_the_issue_fields(recorded):
    sweeps = recorded["sweeps"]
    assert {p["method"] for p in sweeps} == {"safe_lora_paper", "safe_lora_exact", "zero", "random"}
    n = recorded["n_modules"]
    for p in sweeps:
        assert FIELDS <= set(p)
        assert (p["rank"] is not None) == (p["method"] == "safe_lora_exact")
        assert 0 <= p["k"] <= n and p["seed"] == 0
        assert all(0.0 <= p[m] <= 1.0 for m in ("refusal_rate", "task_accuracy", "over_refusal_rate"))
    assert sorted({p["k"] for p in sweeps if p.get("select") == "number"}) == sorted(set(range(0, n + 1, 4)) | {n})


def test_sweeps_agree_with_the_reference_models(recorded):
    """K=0 is the attacked adapter; zeroing every module is the aligned model; K=all projects the same set."""
    sweeps, aligned = recorded["sweeps"], recorded["aligned"]
    n = recorded["n_modules"]
    attacked = {a["attack"]: a for a in recorded["attacked"]}
    number = [p for p in sweeps if p.get("select") == "number"]
    for p in number:
        if p["k"] == 0:
            assert p["refusal_rate"] == attacked[p["attack"]]["refusal_rate"]
            assert p["task_accuracy"] == attacked[p["attack"]]["task_accuracy"]
        if p["method"] == "zero" and p["k"] == n:
            assert p["refusal_rate"] == aligned["refusal_rate"] and p["task_accuracy"] == aligned["task_accuracy"]
    for attack in attacked:
        full = {p["method"]: p for p in number if p["attack"] == attack and p["k"] == n}
        assert full["random"]["refusal_rate"] == full["safe_lora_paper"]["refusal_rate"]


def test_conclusion_is_computed(recorded):
    for attack in ("mixed", "pure_harmful"):
        c = recorded["conclusion"][attack]
        assert 0.0 <= c["max_gap_paper_vs_zero"] <= 1.0
        assert c["settings"] and all(s in c["settings"] for s in c["meeting_target"])
    low, high = recorded["shrink_range"]
    assert 0.0 < low <= high
