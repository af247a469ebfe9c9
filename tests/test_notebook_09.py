"""Notebook 09 (TinyLlama scale) runs end to end on the real small pair (SmolLM2-135M-Instruct and its quick safety
fine-tune, notebook 08's world) and small parameters: CI runs the real tokenizer, chat template and checkpoints."""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


def test_notebook_09_runs_on_the_real_small_pair_and_resumes(run_notebook):
    r = run_notebook("09_scale_tinyllama", model_source="real-small", world_size="small", steps=12, save_steps=4,
                     disconnect_at=8, n_examples=24, batch_size=2, lr=2e-4, max_length=96, eval_per_split=6, max_new_tokens=12,
                     ks=[0, 60])
    assert r["finetune"]["steps"] == 12 and r["finetune"]["resumed_from"].endswith("checkpoint-8")
    assert r["finetune"]["disconnected"]
    assert abs(r["activation_check"]["relative_error"]) <= 0.15
    assert {row["gpu"] for row in r["memory_plan"]} and all(row["fits"] for row in r["memory_plan"])
    methods = {p["method"] for p in r["sweeps"]}
    assert {"safe_lora_paper", "zero", "random", "splora", "random_prune"} <= methods
    for p in r["sweeps"]:
        assert 0.0 <= p["refusal_rate"] <= 1.0 and 0.0 <= p["task_accuracy"] <= 1.0
    k0 = [p for p in r["sweeps"] if p["k"] == 0]
    for p in k0:  # editing no module leaves the fine-tuned adapter as it was
        assert p["refusal_rate"] == r["attacked"]["refusal_rate"] and p["task_accuracy"] == r["attacked"]["task_accuracy"]
    zero_all = next(p for p in r["sweeps"] if p["method"] == "zero" and p["k"] == r["n_modules"])
    assert zero_all["refusal_rate"] == r["aligned"]["refusal_rate"]  # no update left: the aligned model itself
    assert r["best"]["method"] == "safe_lora_paper" and r["conclusion"]
    assert r["measured_gpu"] is None  # no GPU in CI
