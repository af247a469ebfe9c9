"""On a CUDA GPU: random weights of the real shapes; the planner against the measured peak, and a step time."""

import pytest

pytestmark = pytest.mark.gpu


def test_tinyllama_real_shapes_lora_step_matches_the_planner():
    from peft import LoraConfig, get_peft_model

    from safelora_lite.training import memory_plan as mp
    from safelora_lite.adapters.model_loading import TINYLLAMA_CHAT, load_model

    loaded = load_model(TINYLLAMA_CHAT, "random-real-shapes", dtype="bf16")
    model = get_peft_model(loaded.model, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    model.train()
    measured = mp.measured_step(model, seq_len=512, batch=2, steps=3)
    predicted = mp.plan(loaded.model.config, 512, 2, 16, ("q_proj", "v_proj"), "bf16").total
    assert measured["step_seconds"] > 0
    assert abs(predicted - measured["peak_bytes"]) <= 0.15 * measured["peak_bytes"], (predicted, measured)


def test_cpu_only_message_is_not_shown_on_a_gpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_gpu.py"
    proc = subprocess.run([sys.executable, str(script), "--models", "tinyllama", "--batch", "1", "--seq-len", "128",
                           "--out", str(tmp_path / "gpu.json")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and (tmp_path / "gpu.json").is_file(), proc.stderr[-2000:]
