"""Notebook 11 (LoX, safety shaping) runs on the small world with tiny parameters and records consistent rows."""

import numpy as np
import pytest

from safelora_lite.evaluation.generation import RATES

pytestmark = pytest.mark.slow

ATTACKS = ("mixed", "pure_harmful")


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("11_beyond", world_size="small", seeds=[0, 1], attack_steps=6, pure_harmful_examples=16,
                        lox_alpha=1.0, lox_k=2, lox_alphas=[0.0, 1.0], lox_ks=[2], lox_sweep_alphas=[0.0],
                        shaping_betas=[], guardrail_steps=20, eval_max_per_split=4)


def test_methods_have_every_rate_over_the_seeds(recorded):
    methods = recorded["methods"]
    assert {"lora", "lox", "shaping"} <= set(methods)
    for method in ("lora", "lox", "shaping"):
        for attack in ATTACKS:
            for m in RATES:
                s = methods[method][attack][m]
                assert len(s["values"]) == 2 and all(0.0 <= v <= 1.0 for v in s["values"])
                assert s["mean"] == pytest.approx(np.mean(s["values"])) and s["std"] == pytest.approx(np.std(s["values"]))
    assert methods["lox"]["setting"] == {"alpha": 1.0, "k": 2}


def test_lox_with_alpha_zero_is_plain_lora(recorded):
    """alpha = 0 leaves the aligned weights as they are, so the same attack gives the same rates."""
    sweeps = recorded["sweeps"]
    before_zero = next(p for p in sweeps if p.get("stage") == "before_attack" and p["alpha"] == 0.0)
    assert all(before_zero[m] == recorded["aligned"][m] for m in RATES)
    for attack in ATTACKS:
        lora = next(p for p in sweeps if p["method"] == "lora" and p["attack"] == attack and p["seed"] == 0)
        lox0 = next(p for p in sweeps if p["method"] == "lox" and p.get("stage") is None and p["attack"] == attack and p["alpha"] == 0.0)
        assert all(lox0[m] == lora[m] for m in RATES)


def test_guardrail_and_conclusion_are_recorded(recorded):
    g = recorded["guardrail"]
    assert 0.0 <= g["trained"]["accuracy"] <= 1.0 and g["weak"]["n_unsafe"] == g["trained"]["n_unsafe"]
    # the weak guardrail was trained with flipped labels: it leaves more weight on unsafe answers
    assert g["weak"]["mean_weight_unsafe"] >= g["trained"]["mean_weight_unsafe"]
    assert {(a["attack"], a["seed"]) for a in g["on_attack_data"]} >= {(a, s) for a in ATTACKS for s in (0, 1)}
    for attack in ATTACKS:
        for method in ("lox", "shaping"):
            entry = recorded["conclusion"][attack][method]
            change = recorded["methods"][method][attack]["refusal_rate"]["mean"] - recorded["methods"]["lora"][attack]["refusal_rate"]["mean"]
            assert entry["refusal_rate"]["change_vs_lora"] == pytest.approx(change)
    assert set(recorded["best"]) == {"lox", "shaping"}
