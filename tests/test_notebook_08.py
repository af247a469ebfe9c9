"""Notebook 08 (the real small world) runs end to end on the tests' quick world with tiny parameters.

The real path is exercised: SmolLM2's tokenizer and chat template, its checkpoints streamed module by module.
"""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


@pytest.fixture(scope="module")
def recorded(run_notebook):
    return run_notebook("08_real_small_model", world_size="small", seeds=[0], attacks=["mixed"], attack_steps=3, all_linear=False,
                        methods=["lora", "safe_lora_paper", "zero_control"], ks=[60], eval_max_per_split=3, benign_prompts=3,
                        toy_world_size="small", show_examples=1)


def test_world_and_attacks_are_recorded(recorded):
    from pathlib import Path

    world = recorded["world"]
    assert Path(world["base_dir"], "model.safetensors").is_file() and Path(world["aligned_dir"], "model.safetensors").is_file()
    assert set(recorded["attack_folders"]) == {"mixed seed 0"} and Path(recorded["attack_folders"]["mixed seed 0"]).is_dir()
    calibration = recorded["calibration"]
    assert {"test", "validation", "base_test", "benign_answered", "meets_bars"} <= set(calibration)
    assert calibration["test"]["n"]["refusal_rate"] == 3
    assert recorded["conclusions"] and all(isinstance(line, str) for line in recorded["conclusions"])


def test_geometry_is_bounded_by_the_projector(recorded):
    real, toy = recorded["geometry"]["real"], recorded["geometry"]["toy"]
    assert len(real) == 60 and {r["kind"] for r in real} == {"q_proj", "v_proj"}  # 30 blocks x (q, v)
    assert toy and len(toy) != len(real)
    for row in real + toy:
        assert 0.0 <= row["shrink"] <= row["top_eigenvalue"] + 1e-6


def test_sweep_and_protocol_agree_with_the_reference_models(recorded):
    aligned = next(r for r in recorded["k_sweep"] if r["method"] == "zero" and r["k"] == 60)  # every update deleted
    assert aligned["refusal_rate"] == recorded["calibration"]["test"]["refusal_rate"]
    assert aligned["task_accuracy"] == recorded["calibration"]["test"]["task_accuracy"]
    methods = recorded["summary"]["mixed"]
    assert set(methods) == {"lora", "safe_lora_paper", "zero_control"}
    lora = next(r for r in recorded["rows"] if r["method"] == "lora")
    attacked = next(a for a in recorded["attacked"] if a["attack"] == "mixed")
    assert lora["refusal_rate"] == attacked["refusal_rate"] and lora["task_accuracy"] == attacked["task_accuracy"]
    assert set(recorded["natural_english"]) == {"base", "aligned", "mixed attack"}
    assert recorded["natural_english"]["aligned"]["n"]["refusal_rate"] == 3
