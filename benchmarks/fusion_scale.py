"""LoRA fusion at Llama-2-7B's q_proj / v_proj shapes: time, peak memory and exactness of `fuse`.

Two random adapters (task r=8 alpha=16, safety r=16 alpha=16 with rsLoRA) for 32 layers x {q, v}
(4096 x 4096) are written as PEFT folders, then fused from disk to disk with weights 0.6 / 0.4, as
`safelora-lite fuse` does. Exactness: the fused update of a few modules against the dense sum.

    python benchmarks/fusion_scale.py [--layers 32] [--d 4096] [--check 4]
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def write_random_adapter(out: Path, layers: int, d: int, r: int, alpha: int, rslora: bool, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(layers):
        for proj in ("q_proj", "v_proj"):
            name = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            tensors[f"{name}.lora_A.weight"] = torch.randn(r, d, generator=g) / d ** 0.5  # (r, d_in), A
            tensors[f"{name}.lora_B.weight"] = torch.randn(d, r, generator=g) * 1e-2  # (d_out, r), B
    out.mkdir(parents=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "use_rslora": rslora,
              "target_modules": ["q_proj", "v_proj"], "bias": "none", "base_model_name_or_path": "meta-llama/Llama-2-7b-chat-hf"}
    (out / "adapter_config.json").write_text(json.dumps(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--d", type=int, default=4096)
    parser.add_argument("--check", type=int, default=4, help="modules checked against the dense sum")
    args = parser.parse_args()

    import torch

    from safelora_lite.adapters.lora_io import read_adapter
    from safelora_lite.methods.fusion import fuse, fused_delta

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_random_adapter(tmp / "task", args.layers, args.d, 8, 16, False, 0)
        write_random_adapter(tmp / "safety", args.layers, args.d, 16, 16, True, 1)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        out = fuse([tmp / "task", tmp / "safety"], [0.6, 0.4], tmp / "fused")
        seconds = time.perf_counter() - start
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        inputs, fused = [read_adapter(tmp / "task"), read_adapter(tmp / "safety")], read_adapter(out)
        errors = []
        for name in list(fused.modules)[: args.check]:
            wanted = fused_delta(inputs, [0.6, 0.4], name)  # (d, d), dense sum_i w_i s_i B_i A_i
            errors.append(float((fused.modules[name].delta() - wanted).norm() / wanted.norm()))
        size_mib = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(json.dumps({
        "modules": len(fused.modules), "shape": [args.d, args.d], "fused_rank": fused.modules[name].rank,
        "seconds": round(seconds, 3), "peak_rss_increase_mib": round(peak_mib, 1), "fused_size_mib": round(size_mib, 1),
        "max_relative_error": max(errors), "torch_threads": torch.get_num_threads(),
    }, indent=1))


if __name__ == "__main__":
    main()
