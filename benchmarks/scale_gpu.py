"""One GPU, random weights of the real shapes: memory and time of a LoRA step, and of the Safe LoRA projection.

For TinyLlama-1.1B and Llama-2-7B in bf16 (shapes from safelora_lite.adapters.model_loading.REAL_SHAPES):
  - peak GPU memory (torch.cuda.max_memory_allocated) and step time of a LoRA training step
    (r=16, q_proj + v_proj, AdamW), next to the memory planner's prediction;
  - the Safe LoRA projection time for Llama-2-7B q/v: for each of the 64 modules, V = W_aligned - W_base,
    the paper's projector, the score and C @ B, on the GPU (weights random, shapes exact).

    python benchmarks/scale_gpu.py [--seq-len 512] [--batch 1 4] [--models tinyllama llama2-7b] [--out build/bench/scale_gpu.json]

On a machine without a CUDA GPU it prints why and exits 0 (nothing to measure).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

MODELS = {"tinyllama": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "llama2-7b": "meta-llama/Llama-2-7b-chat-hf"}


def lora_step(model_id: str, seq_len: int, batch: int, rank: int = 16) -> dict:
    from peft import LoraConfig, get_peft_model

    from safelora_lite.training import memory_plan as mp
    from safelora_lite.adapters.model_loading import load_model

    torch.cuda.empty_cache()
    loaded = load_model(model_id, "random-real-shapes", dtype="bf16")
    model = get_peft_model(loaded.model, LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj", "v_proj"]))
    model.train()
    measured = mp.measured_step(model, seq_len, batch, steps=4)
    predicted = mp.plan(loaded.model.config, seq_len, batch, rank, ("q_proj", "v_proj"), "bf16")
    del model, loaded
    torch.cuda.empty_cache()
    return {"model": model_id, "seq_len": seq_len, "batch": batch, "rank": rank, "dtype": "bf16",
            "step_seconds": round(measured["step_seconds"], 4), "peak_gib": round(measured["peak_bytes"] / mp.GiB, 3),
            "predicted_gib": round(predicted.total / mp.GiB, 3),
            "planner_error": round(predicted.total / measured["peak_bytes"] - 1, 4)}


def projection_time(rank: int = 16, layers: int = 32, hidden: int = 4096) -> dict:
    """Safe LoRA on the 64 q/v modules of Llama-2-7B shapes: V, the paper's C, the score and C @ B, per module."""
    from safelora_lite.maths.projection import alignment_matrix, projection_similarity, safe_lora_projector

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(layers * 2):
        w_base = torch.randn(hidden, hidden, device=dev, dtype=torch.bfloat16, generator=gen)
        w_aligned = w_base + 0.01 * torch.randn(hidden, hidden, device=dev, dtype=torch.bfloat16, generator=gen)
        lora_b = torch.randn(hidden, rank, device=dev, generator=gen)  # (d_out, r)
        lora_a = torch.randn(rank, hidden, device=dev, generator=gen)  # (r, d_in)
        c = safe_lora_projector(alignment_matrix(w_base, w_aligned), "paper")
        projection_similarity(c, lora_b, lora_a)
        _ = c @ lora_b  # (d_out, r): the projected B
    torch.cuda.synchronize()
    return {"modules": layers * 2, "shape": [hidden, hidden], "rank": rank, "seconds_total": round(time.perf_counter() - start, 3),
            "note": "weights generated on the GPU (no disk reads); includes generating them"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", default="build/bench/scale_gpu.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("scale_gpu: no CUDA GPU on this machine: nothing measured (run it on one GPU, e.g. Colab).")
        return 0
    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "steps": [], "projection": None}
    for name in args.models:
        for batch in args.batch:
            row = lora_step(MODELS[name], args.seq_len, batch)
            results["steps"].append(row)
            print(json.dumps(row))
    if "llama2-7b" in args.models:
        results["projection"] = projection_time()
        print(json.dumps(results["projection"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
