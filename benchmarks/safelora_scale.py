"""Safe LoRA at real scale on a CPU: peak memory and wall time of `safelora-lite safe-lora`.

Writes random fp16 weights with the real q_proj / v_proj shapes of Llama-2-7B (32 layers,
4096 x 4096) and TinyLlama-1.1B (22 layers, q 2048 x 2048, v 256 x 2048) for a base and an
aligned checkpoint (sharded, with a model.safetensors.index.json) plus a rank-8 PEFT adapter,
then runs the CLI as a child process and reports its peak resident memory (os.wait4's rusage)
and its wall time. The reference approach holds two fp32 models, a copy of the adapter model
and every C: about 54 GB for Llama-2-7B.

    python benchmarks/safelora_scale.py [--models llama2-7b tinyllama] [--dir TMP] [--projector paper|exact --rank R]

Budget for Llama-2-7B (issue 4): peak RSS <= 2 GB and wall time <= 3 minutes on a 2-core CPU.
Note: the weights were just written, so they are read from the page cache, not from a cold disk.
"""

import argparse
import json
import shutil
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

SHAPES = {  # name: (hidden, layers, {module: (d_out, d_in)})
    "llama2-7b": (4096, 32, {"q_proj": (4096, 4096), "v_proj": (4096, 4096)}),
    "tinyllama": (2048, 22, {"q_proj": (2048, 2048), "v_proj": (256, 2048)}),
}
KV_HEADS = {"llama2-7b": 32, "tinyllama": 4}
LAYERS_PER_SHARD = 4
BUDGET_RSS_GB, BUDGET_SECONDS = 2.0, 180.0


def write_checkpoint(folder: Path, model: str, seed: int, base_seed: int | None = None) -> None:
    """Random fp16 q/v weights; with base_seed, the base weights plus a small 'alignment' change."""
    hidden, layers, modules = SHAPES[model]
    folder.mkdir(parents=True)
    weight_map = {}
    for first in range(0, layers, LAYERS_PER_SHARD):
        shard = f"model-{first // LAYERS_PER_SHARD + 1:05d}.safetensors"
        tensors = {}
        for layer in range(first, min(first + LAYERS_PER_SHARD, layers)):
            for i, (name, shape) in enumerate(modules.items()):
                key = f"model.layers.{layer}.self_attn.{name}.weight"
                g = torch.Generator().manual_seed(base_seed * 10_000 + layer * 10 + i if base_seed is not None else seed * 10_000 + layer * 10 + i)
                w = torch.randn(shape, generator=g) * 0.02
                if base_seed is not None:  # aligned = base + a small change
                    w += 0.002 * torch.randn(shape, generator=torch.Generator().manual_seed(seed * 10_000 + layer * 10 + i))
                tensors[key] = w.half()
                weight_map[key] = shard
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": layers, "num_key_value_heads": KV_HEADS[model], "num_attention_heads": 32,
              "intermediate_size": {"llama2-7b": 11008, "tinyllama": 5632}[model], "torch_dtype": "float16"}
    (folder / "config.json").write_text(json.dumps(config))


def write_adapter(folder: Path, model: str, rank: int = 8) -> None:
    """A rank-8 PEFT LoRA adapter on q_proj and v_proj (fp32, as peft saves it)."""
    _, layers, modules = SHAPES[model]
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(7)
    tensors = {}
    for layer in range(layers):
        for name, (d_out, d_in) in modules.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, d_in, generator=g) / d_in**0.5  # (r, d_in)
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(d_out, rank, generator=g) * 0.01  # (d_out, r)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
              "target_modules": list(modules), "bias": "none", "base_model_name_or_path": f"random-{model}",
              "fan_in_fan_out": False, "inference_mode": True}
    (folder / "adapter_config.json").write_text(json.dumps(config))


def run_cli(args: list[str]) -> tuple[int, float, float]:
    """Run `safelora-lite ARGS` in a child process: (exit status, wall seconds, peak RSS in GB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "safelora_lite", *args])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def bench(model: str, root: Path, projector: str, rank: int | None, k: int) -> dict:
    folder = root / model
    t0 = time.perf_counter()
    write_checkpoint(folder / "base", model, seed=1)
    write_checkpoint(folder / "aligned", model, seed=2, base_seed=1)
    write_adapter(folder / "adapter", model)
    size_gb = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 2**30
    print(f"[{model}] wrote {size_gb:.2f} GB of safetensors in {time.perf_counter() - t0:.0f} s", flush=True)
    args = ["safe-lora", "--adapter", str(folder / "adapter"), "--base", str(folder / "base"), "--aligned", str(folder / "aligned"),
            "--out", str(folder / "out"), "--num-proj-layers", str(k), "--projector", projector]
    if rank is not None:
        args += ["--rank", str(rank)]
    code, seconds, rss_gb = run_cli(args)
    report = json.loads((folder / "out" / "safelora_report.json").read_text()) if code == 0 else {}
    result = {"model": model, "exit_code": code, "wall_seconds": round(seconds, 1), "peak_rss_gb": round(rss_gb, 3),
              "checkpoint_gb": round(size_gb, 2), "modules": report.get("num_modules"), "projected": report.get("num_projected"),
              "projector": projector, "rank": rank}
    print(f"[{model}] safe-lora: exit {code}, peak RSS {rss_gb:.2f} GB, wall time {seconds:.1f} s "
          f"({result['modules']} modules, {result['projected']} projected)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--dir", default=None, help="where to write the temporary checkpoints (default: system temp)")
    parser.add_argument("--projector", choices=["paper", "exact"], default="paper")
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--num-proj-layers", type=int, default=10)
    parser.add_argument("--json", default="build/bench/safelora_scale.json", help="where to record the figures")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="safelora_scale_") as tmp:
        for model in args.models:
            results.append(bench(model, Path(tmp), args.projector, args.rank, args.num_proj_layers))
            shutil.rmtree(Path(tmp) / model)
    ok = True
    for r in results:
        within = r["exit_code"] == 0 and (r["model"] != "llama2-7b" or (r["peak_rss_gb"] <= BUDGET_RSS_GB and r["wall_seconds"] <= BUDGET_SECONDS))
        ok &= within
        print(f"{r['model']:>10}: peak RSS {r['peak_rss_gb']:.2f} GB, wall {r['wall_seconds']:.1f} s"
              + (f"  (budget {BUDGET_RSS_GB} GB / {BUDGET_SECONDS:.0f} s: {'met' if within else 'MISSED'})" if r["model"] == "llama2-7b" else ""))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
