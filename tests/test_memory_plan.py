"""Memory planner: parameter counts, the activation formula against what autograd really saves, GPU fitting."""

import pytest
import torch

from safelora_lite import InputError
from safelora_lite.training import memory_plan as mp
from safelora_lite.adapters.model_loading import LLAMA2_CHAT, TINYLLAMA_CHAT, real_config


def small_config(**overrides):
    from transformers import LlamaConfig

    shape = dict(vocab_size=500, hidden_size=256, intermediate_size=704, num_hidden_layers=3,
                 num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaConfig(**{**shape, **overrides})


def lora_model(config, dtype, targets, checkpointing=False):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(dtype)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets)))
    model.train()
    return model


def test_parameter_counts_match_the_model():
    config = small_config()
    model = lora_model(config, torch.float32, ["q_proj", "v_proj", "down_proj"])
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert mp.count_parameters(config)["total"] == frozen
    assert mp.lora_parameters(config, 4, ["q_proj", "v_proj", "down_proj"]) == trainable


@pytest.mark.parametrize("dtype, precision, targets, checkpointing", [
    (torch.bfloat16, "bf16", ("q_proj", "v_proj"), False),
    (torch.float32, "fp32", ("q_proj", "v_proj"), False),
    (torch.bfloat16, "bf16", mp.PROJ, False),
    (torch.bfloat16, "bf16", ("q_proj", "v_proj"), True),
])
def test_activation_formula_within_15_percent_of_what_autograd_saves(dtype, precision, targets, checkpointing):
    config = small_config()
    model = lora_model(config, dtype, targets, checkpointing)
    ids = torch.randint(0, config.vocab_size, (2, 48))
    measured = mp.saved_activation_bytes(model, input_ids=ids, labels=ids)
    predicted = mp.activation_bytes_per_token(config, precision, 4, targets, checkpointing)["saved"] * ids.numel()
    assert abs(predicted - measured) <= 0.15 * measured, (predicted, measured)


def test_memory_grows_with_batch_sequence_and_rank_and_shrinks_with_quantization():
    config = real_config(TINYLLAMA_CHAT)
    base = mp.plan(config, seq_len=512, batch=2, rank=16)
    assert mp.plan(config, seq_len=1024, batch=2, rank=16).total > base.total
    assert mp.plan(config, seq_len=512, batch=4, rank=16).total > base.total
    assert mp.plan(config, seq_len=512, batch=2, rank=64).lora > base.lora
    assert mp.plan(config, seq_len=512, batch=2, rank=16, gradient_checkpointing=True).activations < base.activations
    q4 = mp.plan(config, seq_len=512, batch=2, rank=16, quantization="4bit")
    q8 = mp.plan(config, seq_len=512, batch=2, rank=16, quantization="8bit")
    assert q4.weights < q8.weights < base.weights
    # AdamW: fp32 parameter, gradient and two moments per LoRA parameter
    assert base.lora == base.gradients == base.optimizer / 2 == 4 * mp.lora_parameters(config, 16, ("q_proj", "v_proj"))


def test_llama2_7b_weights_alone_are_about_12_5_gib_in_bf16():
    plan = mp.plan(real_config(LLAMA2_CHAT), precision="bf16")
    assert abs(plan.weights / mp.GiB - 6_738_415_616 * 2 / 2**30) < 1e-6


def test_fit_settings_picks_what_fits_and_prefers_no_quantization():
    rows = mp.fit_settings(real_config(LLAMA2_CHAT), seq_len=512, rank=16)
    by_gpu = {r["gpu"]: r for r in rows}
    assert all(r["fits"] for r in rows)
    for r in rows:
        budget = 0.9 * (r["gpu_gib"] * mp.GiB - mp.CUDA_CONTEXT)
        assert r["plan"].total <= budget
    t4 = by_gpu["T4 16 GB"]["plan"]
    assert t4.quantization is not None and t4.precision == "fp16"  # 7B weights alone fill a T4
    big = by_gpu["A100 / H100 80 GB"]["plan"]
    assert big.quantization is None and big.precision == "bf16"
    assert big.batch >= by_gpu["24 GB (L4 / A10G / RTX 4090)"]["plan"].batch


def test_table_and_chart():
    import matplotlib

    matplotlib.use("Agg")
    rows = mp.fit_settings(real_config(TINYLLAMA_CHAT), seq_len=256, rank=8)
    table = mp.plan_table(rows)
    assert all(gpu in table for gpu in mp.GPUS)
    ax = mp.plot_plan(rows)
    assert len(ax.patches) == 4 * len(rows)


def test_bad_settings_are_input_errors():
    config = real_config(TINYLLAMA_CHAT)
    with pytest.raises(InputError):
        mp.plan(config, precision="fp8")
    with pytest.raises(InputError):
        mp.plan(config, quantization="2bit")
    with pytest.raises(InputError):
        mp.plan(config, batch=0)
    with pytest.raises(InputError, match="unknown target module"):
        mp.lora_parameters(config, 8, ["qkv"])


def test_measured_step_on_the_cpu_times_without_a_peak():
    model = lora_model(small_config(num_hidden_layers=1), torch.float32, ("q_proj", "v_proj"))
    out = mp.measured_step(model, seq_len=16, batch=1, device=torch.device("cpu"), steps=2)
    assert out["step_seconds"] > 0 and "peak_bytes" not in out


def test_gpu_benchmark_explains_itself_on_a_cpu_only_machine():
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_gpu.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0 and "no CUDA GPU" in proc.stdout
