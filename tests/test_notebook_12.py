"""Notebook 12 (the safety landscape) runs on the small world with tiny parameters and records consistent readings."""

import pytest

from safelora_lite.evaluation.generation import RATES

pytestmark = pytest.mark.slow

ALPHAS = [-1.0, 0.0, 0.5, 1.0, 2.0]


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("12_safety_landscape", world_size="small", attack_steps=40, alphas=ALPHAS, grid_alphas=[0.0, 1.0],
                        grid_betas=[-1.0, 0.0, 1.0], methods=["safe_lora_paper", "zero_control", "splora"],
                        shrink_scales=[1.0, 10.0], eval_max_per_split=4)


def test_lines_pass_through_the_aligned_and_the_attacked_model(recorded):
    lines, aligned, attacked = recorded["lines"], recorded["aligned"], recorded["attacked"]
    assert set(lines) == {"attack", "random", "safe_lora_paper", "zero_control"}
    for points in lines.values():
        assert [p["alpha"] for p in points] == ALPHAS
        origin = next(p for p in points if p["alpha"] == 0.0)
        assert all(origin[m] == aligned[m] for m in RATES)  # alpha = 0 is the aligned model on every line
    at_one = next(p for p in lines["attack"] if p["alpha"] == 1.0)
    assert all(at_one[m] == attacked[m] for m in RATES)
    assert {(p["alpha"], p["beta"]) for p in recorded["grid"]} == {(a, b) for a in (0.0, 1.0) for b in (-1.0, 0.0, 1.0)}


def test_basins_and_landings_are_consistent(recorded):
    for b in recorded["basins"].values():
        assert b["low"] <= 0.0 <= b["high"] and b["width"] == pytest.approx(b["high"] - b["low"])
        assert b["open"] == (b["exit_low"] is None or b["exit_high"] is None)
    landings = recorded["landings"]
    assert set(landings) == {"safe_lora_paper", "zero_control", "splora"}
    assert recorded["norms"]["random"] == pytest.approx(recorded["norms"]["attack"], rel=1e-4)
    for spot in landings.values():
        assert len(spot["coordinates"]) == 2 and 0.0 <= spot["off_plane"] <= 1.0
    # the zero control keeps the attack's update on the other modules: a share of it along the attack's axis
    assert 0.0 < landings["zero_control"]["coordinates"][0] < 1.0


def test_shrink_factors_are_recorded(recorded):
    shrink = recorded["shrink"]
    assert len(shrink["modules"]) == recorded["n_modules"]
    for row in shrink["modules"]:
        assert 0.0 < row["shrink"] <= row["top_eigenvalue"] * (1 + 1e-5)
        assert row["at_scale"]["10.0"] == pytest.approx(10.0 * row["shrink"], rel=1e-3)
    assert shrink["scale_to_keep"] == pytest.approx(1.0 / shrink["median_shrink"])


@pytest.mark.real_model
def test_runs_on_the_real_small_pair(run_notebook):
    """The same notebook on notebook 08's world: SmolLM2's checkpoints, tokenizer and chat template (the tests' quick pair)."""
    recorded = run_notebook("12_safety_landscape", world_kind="real", world_size="small", attack_steps=3, alphas=[0.0, 1.0],
                            grid_alphas=[0.0, 1.0], grid_betas=[0.0, 1.0], methods=["safe_lora_paper", "zero_control"],
                            shrink_scales=[1.0], eval_max_per_split=2)
    assert recorded["world_kind"] == "real" and recorded["n_modules"] == 60  # 30 blocks x (q_proj, v_proj)
    origin = next(p for p in recorded["lines"]["attack"] if p["alpha"] == 0.0)
    assert all(origin[m] == recorded["aligned"][m] for m in RATES) and recorded["aligned"]["n"]["refusal_rate"] == 2
    assert len(recorded["shrink"]["modules"]) == 60
