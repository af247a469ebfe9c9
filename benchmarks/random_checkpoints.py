"""Random fp16 checkpoints and LoRA adapters of real model shapes, and a child-process timer.

Shared by the scale benchmarks (safelora_scale.py, ediem_scale.py, cli_floor.py). A checkpoint
holds only the weights named in `modules` (e.g. q_proj and v_proj), in hub-like shards of
LAYERS_PER_SHARD layers with a `model.safetensors.index.json`; the aligned checkpoint is the base
plus a small random "alignment" change, so that V = W_aligned - W_base is full rank.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

MODELS = {  # name: (hidden, intermediate, layers, kv heads), as in the models' config.json
    "llama2-7b": (4096, 11008, 32, 32),
    "tinyllama": (2048, 5632, 22, 4),
}
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
LAYERS_PER_SHARD = 4


def module_shapes(model: str, modules=("q_proj", "v_proj")) -> dict[str, tuple[str, tuple[int, int]]]:
    """{module: (its block, (d_out, d_in))} for the named linear modules of `model`."""
    hidden, intermediate, _, kv_heads = MODELS[model]
    kv = hidden * kv_heads // 32  # 32 attention heads in both models
    shapes = {"q_proj": (hidden, hidden), "k_proj": (kv, hidden), "v_proj": (kv, hidden), "o_proj": (hidden, hidden),
              "gate_proj": (intermediate, hidden), "up_proj": (intermediate, hidden), "down_proj": (hidden, intermediate)}
    return {m: ("self_attn" if m in ATTENTION else "mlp", shapes[m]) for m in modules}


def write_checkpoint(folder: Path, model: str, seed: int, base_seed: int | None = None,
                     modules=("q_proj", "v_proj"), layers: int | None = None) -> None:
    """Random fp16 weights; with base_seed, the base weights plus a small 'alignment' change."""
    hidden, intermediate, all_layers, kv_heads = MODELS[model]
    layers = all_layers if layers is None else layers
    shapes = module_shapes(model, modules)
    folder.mkdir(parents=True)
    shards = (layers + LAYERS_PER_SHARD - 1) // LAYERS_PER_SHARD
    weight_map = {}
    for first in range(0, layers, LAYERS_PER_SHARD):
        shard = f"model-{first // LAYERS_PER_SHARD + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for layer in range(first, min(first + LAYERS_PER_SHARD, layers)):
            for i, (name, (block, shape)) in enumerate(shapes.items()):
                key = f"model.layers.{layer}.{block}.{name}.weight"
                g = torch.Generator().manual_seed((base_seed if base_seed is not None else seed) * 10_000 + layer * 10 + i)
                w = torch.randn(shape, generator=g) * 0.02  # (d_out, d_in)
                if base_seed is not None:  # aligned = base + a small change
                    w += 0.002 * torch.randn(shape, generator=torch.Generator().manual_seed(seed * 10_000 + layer * 10 + i))
                tensors[key] = w.half()
                weight_map[key] = shard
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": layers, "num_key_value_heads": kv_heads, "num_attention_heads": 32,
              "intermediate_size": intermediate, "torch_dtype": "float16"}
    (folder / "config.json").write_text(json.dumps(config))


def write_adapter(folder: Path, model: str, rank: int = 8, modules=("q_proj", "v_proj"), layers: int | None = None) -> None:
    """A PEFT LoRA adapter of rank `rank` on `modules` (fp32, as peft saves it), alpha = 2 r."""
    layers = MODELS[model][2] if layers is None else layers
    shapes = module_shapes(model, modules)
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(7)
    tensors = {}
    for layer in range(layers):
        for name, (block, (d_out, d_in)) in shapes.items():
            prefix = f"base_model.model.model.layers.{layer}.{block}.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, d_in, generator=g) / d_in**0.5  # (r, d_in)
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(d_out, rank, generator=g) * 0.01  # (d_out, r)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
              "target_modules": list(modules), "bias": "none", "base_model_name_or_path": f"random-{model}",
              "fan_in_fan_out": False, "inference_mode": True}
    (folder / "adapter_config.json").write_text(json.dumps(config))


# Runs the CLI and, at its exit, writes its own peak RSS (VmHWM of its memory map) to a file. The
# rusage of a child (os.wait4) is no good here: a child forked from this process inherits this
# process's peak, which after writing checkpoints is larger than most CLI runs.
_PEAK_WRAPPER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def record():
    with open('/proc/self/status') as status:
        kib = next(line.split()[1] for line in status if line.startswith('VmHWM'))
    with open(out, 'w') as f:
        f.write(kib)
atexit.register(record)
runpy.run_module('safelora_lite', run_name='__main__', alter_sys=True)
"""


def run_cli(args: list[str], quiet: bool = False) -> tuple[int, float, float, float]:
    """Run `safelora-lite ARGS` in a child process: (exit status, wall s, CPU s (user + system), peak RSS GB).

    Like `python -m safelora_lite`, the child imports the package from the current directory first.
    """
    with tempfile.NamedTemporaryFile(prefix="peak_rss_") as peak:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _PEAK_WRAPPER, peak.name, *args],
                                stdout=subprocess.DEVNULL if quiet else None)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        kib = Path(peak.name).read_text().strip()
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_utime + usage.ru_stime, int(kib or 0) / 2**20
