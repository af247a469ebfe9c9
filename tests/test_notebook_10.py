"""Notebook 10 (Llama-2-7B scale) runs end to end with the stand-in pair and small parameters."""

import pytest

pytestmark = pytest.mark.slow


def test_notebook_10_plans_7b_and_runs_the_pipeline_on_the_stand_in(run_notebook):
    r = run_notebook("10_scale_llama2_7b", model_source="stand-in", world_size="small", steps=8, save_steps=4,
                     disconnect_at=4, n_examples=64, batch_size=16, eval_per_split=5, max_new_tokens=12, ks=[4],
                     quantization="4bit")  # without bitsandbytes / a GPU this is skipped with a message
    assert r["finetune"]["steps"] == 8 and r["finetune"]["resumed_from"].endswith("checkpoint-4")
    plan = {row["gpu"]: row for row in r["memory_plan"]}
    assert plan["T4 16 GB"]["quantization"] in ("8bit", "4bit")  # 7B in 16-bit does not fit a T4
    assert plan["A100 / H100 80 GB"]["quantization"] is None
    by_quant = {row["quantization"]: row for row in r["quantization_plan"]}
    assert by_quant["4bit"]["weights"] < by_quant["8bit"]["weights"] < by_quant[None]["weights"]
    assert r["projection_memory"]["reference_gib"] > 50 > 1 > r["projection_memory"]["streaming_gib"]
    assert {p["method"] for p in r["sweeps"]} >= {"safe_lora_paper", "zero", "random", "splora", "random_prune"}
    assert all(p["k"] == 4 for p in r["sweeps"])
